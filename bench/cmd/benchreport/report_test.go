package main

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/bench"
)

// synth makes synthetic measurements. Every value it returns is a base
// value times a factor drawn for that value alone, 1 + v·u with u in
// [0.05, 0.35): two variants (v = 1, 2) differ in every measurement and
// every parameter, and in every ratio of two of them. The base values sit
// far enough on one side of the goals that both variants miss (or meet)
// the same targets.
type synth struct {
	v   int
	rnd *rand.Rand
}

func (g *synth) f() float64 { return 1 + float64(g.v)*(0.05+0.3*g.rnd.Float64()) }

func (g *synth) n(base int) int { return int(float64(base) * g.f()) }

func (g *synth) d(ms float64) time.Duration {
	return time.Duration(ms * g.f() * float64(time.Millisecond))
}

func (g *synth) sample(ms float64, runs int) bench.Sample {
	s := make(bench.Sample, runs+g.v)
	for i := range s {
		s[i] = g.d(ms)
	}
	return s
}

func (g *synth) rates(base float64, runs int) []float64 {
	r := make([]float64, runs+g.v)
	for i := range r {
		r[i] = base * g.f()
	}
	return r
}

func scaled(s bench.Sample, x float64) bench.Sample {
	out := make(bench.Sample, len(s))
	for i, d := range s {
		out[i] = time.Duration(float64(d) * x)
	}
	return out
}

func scaledRates(rs []float64, x float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r * x
	}
	return out
}

func (g *synth) load(name string, rate float64, ms float64) bench.LoadResult {
	return bench.LoadResult{Name: name, Bytes: g.n(5000), RPS: g.rates(rate, 5), P50: g.sample(ms, 5), P99: g.sample(4*ms, 5)}
}

// syntheticReport returns a report of variant v in which every target is
// missed (miss) or met.
func syntheticReport(v int, miss bool) *report {
	g := &synth{v: v, rnd: rand.New(rand.NewPCG(uint64(v), 16))}
	// k picks a value on the right or the wrong side of its goal.
	k := func(meet, missed float64) float64 {
		if miss {
			return missed
		}
		return meet
	}
	// rho is the ratio of a compared pair: k's, times a factor of the
	// variant, so that a ratio printed with two digits differs between
	// variants too. The pairs are built from the same runs, scaled, so
	// that the ratio of their medians is rho exactly.
	rho := func(meet, missed float64) float64 { return k(meet, missed) * (1 + 0.1*float64(v)) }
	start := time.Date(2030+v, time.Month(2+v), 3+v, 4+v, 7+v, 0, 0, time.UTC)
	r := &report{
		cfg: config{
			command: fmt.Sprintf("make bench-%d", v), bin: fmt.Sprintf("bin/rampart-%d", v), runs: 4 + v,
			goBench: "bench.txt", goBenchCmd: fmt.Sprintf("go test -bench . -count %d ./enforcer", 4+v),
		},
		start: start, end: start.Add(g.d(190000)),
		machine: machine{
			nproc: 3 + v, cpu: fmt.Sprintf("Synthetic CPU %d", 7000+v), mem: fmt.Sprintf("%d.%d GiB", 30+v, v),
			kernel: fmt.Sprintf("%d.%d.%d-test", 7+v, 11+v, 40+v), goVer: fmt.Sprintf("go1.%d.%d", 90+v, v),
			nft: fmt.Sprintf("nftables v%d.0.%d", 3+v, v), iptables: fmt.Sprintf("iptables v%d.8.%d", 3+v, v),
			loadAt: fmt.Sprintf("%d.11 %d.12 %d.13", v, v, v),
		},
		loadEnd: fmt.Sprintf("%d.21 %d.22 %d.23", v, v, v),
	}
	for _, sc := range []bench.Scale{{Servers: 13, Groups: 21, Rules: 11}, {Servers: 130, Groups: 21, Rules: 11}, {Servers: 1300, Groups: 210, Rules: 55}} {
		sc = bench.Scale{Servers: g.n(sc.Servers), Groups: g.n(sc.Groups), Rules: g.n(sc.Rules)}
		nft := g.sample(37, 5)
		r.apply = append(r.apply, bench.ApplyResult{
			Scale: sc, KernelRules: g.n(3000), IPTRules: g.n(4000), TextBytes: g.n(90000),
			Incremental: g.sample(k(1.1, 11), 30), Burst: g.sample(k(0.9, 7), 30),
			NFT: nft, Full: scaled(nft, rho(0.25, 2)),
		})
		last := &r.apply[len(r.apply)-1]
		last.IPT = scaled(last.Full, 1/rho(0.35, 1.5))
		r.store = append(r.store, bench.StoreApplyResult{
			Scale: sc, Commit: g.sample(0.7, 15), ToKernel: g.sample(k(1.3, 13), 15),
			Snapshot: g.sample(9, 5), LastApply: g.sample(k(0.9, 9.1), 15),
		})
	}
	dp := &bench.DatapathResults{Workers: 2 + v, Duration: g.d(1700).Round(100 * time.Millisecond), Port: 8000 + v,
		GroupRules: g.n(47), Groups: g.n(190)}
	few, many := 1+v, g.n(4900)
	nftFew, iptFew := g.rates(21000, 5), g.rates(20000, 5)
	for _, c := range []struct {
		cfg   bench.DatapathConfig
		rates []float64
	}{
		{bench.DatapathConfig{Name: "no ruleset", Servers: few, Kind: "none"}, g.rates(23000, 5)},
		{bench.DatapathConfig{Name: "Rampart", Servers: few, Kind: "nftables"}, nftFew},
		{bench.DatapathConfig{Name: "Rampart", Servers: many, Kind: "nftables"}, scaledRates(nftFew, rho(1.5, 0.4))},
		{bench.DatapathConfig{Name: "iptables", Servers: few, Kind: "iptables"}, iptFew},
		{bench.DatapathConfig{Name: "iptables", Servers: many, Kind: "iptables"}, scaledRates(iptFew, rho(0.1, 0.1))},
	} {
		res := bench.DatapathResult{Config: c.cfg, Rules: g.n(11000), Rates: c.rates}
		for _, x := range res.Rates {
			conns := int(x * dp.Duration.Seconds())
			res.Conns = append(res.Conns, conns)
			if c.cfg.Kind != "none" {
				res.Accepted = append(res.Accepted, uint64(float64(conns)*g.f()))
			} else {
				res.Accepted = append(res.Accepted, 0)
			}
		}
		dp.Configs = append(dp.Configs, res)
	}
	r.datapath = dp
	r.engines = []bench.Engine{
		{Name: "SQLite", Detail: fmt.Sprintf("a file of variant %d", v)},
		{Name: "PostgreSQL", Detail: fmt.Sprintf("PostgreSQL %d.%d, fsync on", 14+v, v)},
	}
	api := &bench.APIResults{
		Scale: bench.Scale{Groups: g.n(990), Rules: g.n(9)}, Workers: 6 + v, Duration: dp.Duration, PerPage: g.n(95), PutRules: g.n(97),
		GetBare: g.load("bare Echo", 20000, 0.1), ListBare: g.load("bare Echo", 1600, 0.2),
	}
	r.put = &bench.PutResults{
		Scale: bench.Scale{Servers: g.n(980), Groups: g.n(980), Rules: g.n(9)}, KernelRules: g.n(15000), Rules: g.n(97),
		Workers: 6 + v, Duration: dp.Duration,
	}
	r.commit = &bench.CommitResults{
		Scale: bench.Scale{Servers: g.n(1000), Groups: g.n(200), Rules: g.n(50)}, KernelRules: g.n(12000), GroupRules: g.n(55),
		ScriptBytes: g.n(4000), NFT: g.sample(14, 20+v),
	}
	for i, e := range r.engines {
		// Each engine's ratio differs from the other's, on the same side
		// of its goal.
		x := 1 + 0.05*float64(i)
		ea := bench.EngineAPI{Engine: e.Name,
			Get: g.load("GET one group, "+e.Name, 20000, 0.3), List: g.load("GET a page, "+e.Name, 1600, 3.7),
			Put: g.load("PUT, preview, "+e.Name, 310, 23), PutApply: g.sample(19, 5)}
		ea.Get.RPS = scaledRates(api.GetBare.RPS, rho(1, 0.2)*x)
		ea.List.RPS = scaledRates(api.ListBare.RPS, rho(1, 0.05)*x)
		api.Engines = append(api.Engines, ea)
		r.put.Engines = append(r.put.Engines, bench.EnginePut{Engine: e.Name,
			Load:   g.load("PUT, nftables, "+e.Name, 300*k(2.2, 0.4)*x, 25),
			Settle: g.sample(12, 5), Answer: g.sample(3.3, 25), ToKernel: g.sample(6.1, 25)})
		r.commit.Engines = append(r.commit.Engines, bench.EngineCommit{Engine: e.Name,
			Commit: g.sample(1.4, 20+v), ToKernel: g.sample(9, 20+v), Snapshot: g.sample(40, 5),
			Pass: scaled(r.commit.NFT, rho(0.25, 2)*x)})
	}
	r.api = api
	agents := g.n(50)
	perAgent := make(bench.Sample, 0, agents*(25+v))
	for range 25 + v {
		perAgent = append(perAgent, g.sample(k(40, 1500), agents)...)
	}
	r.fleet = &bench.FleetResults{
		Config: bench.FleetConfig{Agents: agents, SharedRules: g.n(20), OwnRules: g.n(10), Changes: 25 + v,
			Idle: time.Duration(8+v) * time.Second, Settle: time.Duration(2+v) * time.Second},
		InProcess: agents - 1 - v, Heartbeat: time.Duration(9+v) * time.Second, Setup: g.d(9000), ViewBytes: g.n(9000),
		Answer: g.sample(6, 25+v), All: g.sample(k(60, 1900), 25+v), PerAgent: perAgent, Binary: g.sample(k(50, 1700), 25+v),
		Instant: 25 + v, Poll: time.Duration(1+v) * time.Millisecond, Pause: time.Duration(150+v) * time.Millisecond,
		Clean: 20 + v, FrameBytes: g.rates(2400, 20+v), WireBytes: g.rates(3100, 20+v), ReportBytes: g.rates(40000, 25+v),
		IdleCPU: 0.01 * g.f(), IdleFrames: uint64(g.n(60)), IdleReports: uint64(g.n(55)), ChangeCPU: g.sample(25, 25+v),
		ConsoleRSS: int64(g.n(60000)), ConsoleHWM: int64(g.n(80000)), AgentRSS: int64(g.n(20000)),
		AgentRSSLate: int64(g.n(21000)), AgentHWM: int64(g.n(24000)),
	}
	r.console = &bench.ConsoleResults{
		ListGroups: g.n(990), List: g.sample(k(4, 21), 25), ListBytes: g.n(650000),
		DetailRules: g.n(97), Detail: g.sample(k(1.9, 23), 25), DetailBytes: g.n(290000),
		Page: []bench.Asset{
			{Path: "/static/css/console.css", Bytes: g.n(3400), Gzip: g.n(3500), Encoding: "gzip"},
			{Path: "/static/js/console.js", Bytes: g.n(1500), Gzip: g.n(1600), Encoding: "gzip"},
			{Path: "/static/vendor/htmx.min.js", Bytes: g.n(16000), Gzip: g.n(17000), Encoding: ""},
		},
		AllStatic: slices.Repeat([]bench.Asset{{Bytes: g.n(17000)}}, 3+v),
	}
	kb := func(base int64) []int64 {
		xs := make([]int64, 5+v)
		for i := range xs {
			xs[i] = int64(float64(base) * g.f())
		}
		return xs
	}
	r.binary = &bench.BinaryResults{
		Size: int64(g.n(16000000)), Loaded: bench.Scale{Servers: g.n(970), Groups: g.n(970), Rules: g.n(9)}, KernelRules: g.n(15000),
		StartEmpty: g.sample(5.9, 10), StartLoaded: g.sample(k(66, 290), 10), StartNFT: g.sample(k(70, 290), 10),
		Poll: time.Duration(v+1) * time.Millisecond, Settle: time.Duration(2+v) * time.Second, PerPage: g.n(95),
		RSS: kb(35000), RSSAfterLoad: kb(int64(k(20000, 60000))),
	}
	for _, name := range []string{"BenchmarkApplyOneGroupChange", "BenchmarkFullResync"} {
		res := goBenchResult{name: name}
		for range 4 + v {
			res.nsOps = append(res.nsOps, float64(g.d(1.8)))
		}
		r.goBench = append(r.goBench, res)
	}
	return r
}

func render(r *report) string {
	var sb strings.Builder
	r.write(&sb)
	return sb.String()
}

var (
	codeSpanRe = regexp.MustCompile("`[^`\n]*`")
	headingRe  = regexp.MustCompile(`(?m)^(#+ )\d+\. `)
	// A number: digits not glued to a word before them (IPv6, p90, v1)
	// nor to an option dash (gzip -6).
	numberRe = regexp.MustCompile(`(?:^|[^\pL\pN_\-.])(\d+(?:[.,]\d+)*)`)
	// A measurement with its unit, as the report writes them.
	measureRe = regexp.MustCompile(`\d+(?:\.\d+)?(?: ms| MB|×|/s)`)
)

// figures returns, line by line, the numbers of a report outside code
// spans, section numbers, the goals of the targets table and the
// load-average legend: what must come from the measurements or the
// parameters of the run.
func figures(text string) [][]string {
	s := headingRe.ReplaceAllString(text, "$1")
	s = strings.ReplaceAll(s, "(1, 5, 15 min)", "")
	for _, tg := range new(report).targets() {
		s = strings.ReplaceAll(s, tg.goal, "")
	}
	s = codeSpanRe.ReplaceAllString(s, "")
	var out [][]string
	for _, line := range strings.Split(s, "\n") {
		var nums []string
		for _, m := range numberRe.FindAllStringSubmatch(line, -1) {
			nums = append(nums, m[1])
		}
		out = append(out, nums)
	}
	return out
}

// TestBenchmarkReportOnlyMeasuredFigures is finding 16 of the benchmark
// review: BENCHMARKS.md carries only figures of the run that wrote it.
// The report is rendered from four sets of synthetic measurements that
// differ in every value; a number found on the same line of all four is
// written by the generator itself, not measured. Section numbers and the
// goals of the targets table are the only numbers allowed to stay. The
// figures of the prose (targets, what remains) must also be those of the
// tables.
func TestBenchmarkReportOnlyMeasuredFigures(t *testing.T) {
	const variants = 4
	for _, miss := range []bool{true, false} {
		t.Run(fmt.Sprintf("miss=%v", miss), func(t *testing.T) {
			texts := make([]string, variants)
			figs := make([][][]string, variants)
			for v := range variants {
				texts[v] = render(syntheticReport(v+1, miss))
				figs[v] = figures(texts[v])
				if len(figs[v]) != len(figs[0]) {
					t.Fatalf("variant %d has %d lines, variant 1 %d: the report's shape depends on the values", v+1, len(figs[v]), len(figs[0]))
				}
			}
			lines := strings.Split(texts[0], "\n")
			total := 0
			for i, nums := range figs[0] {
				total += len(nums)
				for _, n := range nums {
					inAll := true
					for v := 1; v < variants; v++ {
						inAll = inAll && slices.Contains(figs[v][i], n)
					}
					if inAll {
						t.Errorf("%s is on line %d of every variant: not derived from the measurements\n  %s", n, i+1, lines[i])
					}
				}
			}
			if total < 300 {
				t.Fatalf("only %d numbers in the report: the synthetic run did not fill it", total)
			}
			mark := "met"
			if miss {
				mark = "**missed**"
			}
			for _, l := range lines {
				if strings.HasPrefix(l, "| ") && (strings.Contains(l, "| ≤ ") || strings.Contains(l, "| ≥ ") || strings.Contains(l, "| < ")) {
					if !strings.HasSuffix(l, "| "+mark+" |") {
						t.Errorf("target line %q: want %s", l, mark)
					}
				}
			}
			checkProseFromTables(t, texts[0])
			for _, bad := range []string{"TODO", "before (", "≈", "~"} {
				if strings.Contains(texts[0], bad) {
					t.Errorf("the report holds %q", bad)
				}
			}
		})
	}
	t.Run("no PostgreSQL", func(t *testing.T) {
		r := syntheticReport(1, true)
		r.engines, r.noPostgres = r.engines[:1], "initdb and postgres not found"
		r.api.Engines, r.put.Engines, r.commit.Engines = r.api.Engines[:1], r.put.Engines[:1], r.commit.Engines[:1]
		text := render(r)
		if !strings.Contains(text, "PostgreSQL**: not measured in this run: initdb and postgres not found.") {
			t.Error("the report does not say why PostgreSQL was not measured")
		}
		n := 0
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, "| ") && strings.Contains(l, "PostgreSQL") {
				if !strings.Contains(l, "| not measured in this run | |") {
					t.Errorf("a line about PostgreSQL states a figure: %s", l)
				}
				n++
			}
		}
		if n != 4 {
			t.Errorf("%d target lines name PostgreSQL, want 4 (pass, GET, list, PUT), each not measured", n)
		}
	})
	t.Run("nothing measured", func(t *testing.T) {
		r := &report{cfg: config{command: "make bench", runs: 5}, start: time.Now(), skipped: []string{"enforcer", "store", "commit", "datapath", "put", "fleet"}}
		r.end = r.start
		s := render(r)
		for _, tg := range r.targets() {
			s = strings.ReplaceAll(s, tg.goal, "")
		}
		s = codeSpanRe.ReplaceAllString(s, "")
		for _, m := range measureRe.FindAllString(s, -1) {
			t.Errorf("a report with nothing measured states the figure %q", m)
		}
		if strings.Contains(s, "| met |") || strings.Contains(s, "**missed**") {
			t.Error("a report with nothing measured marks a target met or missed")
		}
	})
}

// checkProseFromTables checks that every measurement quoted in the
// targets table and under "What remains" is a figure of the sections'
// tables (or of the runs lines under them), written the same way.
func checkProseFromTables(t *testing.T, text string) {
	t.Helper()
	targetsAt := strings.Index(text, "## Targets")
	sectionsAt := strings.Index(text, "## 1. ")
	remainsAt := strings.Index(text, "## What remains")
	if targetsAt < 0 || sectionsAt < targetsAt || remainsAt < sectionsAt {
		t.Fatal("the report lacks its Targets, sections or What remains")
	}
	inTables := map[string]bool{}
	for _, l := range strings.Split(text[sectionsAt:remainsAt], "\n") {
		if strings.HasPrefix(l, "|") || strings.HasPrefix(l, "Runs at") || strings.HasPrefix(l, "PUT with the preview") {
			for _, c := range strings.Split(l, "|") {
				for _, m := range measureRe.FindAllString(c, -1) {
					inTables[m] = true
				}
				// A rate column holds the number alone.
				if c = strings.TrimSpace(c); regexp.MustCompile(`^\d+$`).MatchString(c) {
					inTables[c+"/s"] = true
				}
			}
		}
	}
	var quoted []string
	for _, l := range strings.Split(text[targetsAt:sectionsAt], "\n") {
		if cells := strings.Split(l, "|"); len(cells) == 6 {
			quoted = append(quoted, measureRe.FindAllString(cells[3], -1)...)
		}
	}
	for _, l := range strings.Split(text[remainsAt:], "\n") {
		quoted = append(quoted, measureRe.FindAllString(codeSpanRe.ReplaceAllString(l, ""), -1)...)
	}
	if len(quoted) == 0 {
		t.Fatal("no figure quoted in the targets table")
	}
	goals := map[string]bool{}
	for _, tg := range new(report).targets() {
		for _, m := range measureRe.FindAllString(tg.goal, -1) {
			goals[m] = true
		}
	}
	for _, q := range quoted {
		if !inTables[q] && !goals[q] {
			t.Errorf("%s is quoted in the prose but is in no table of the report", q)
		}
	}
}
