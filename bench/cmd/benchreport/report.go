package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-fw/rampart/bench"
)

// report collects the results of one run and renders BENCHMARKS.md from
// them alone: every figure it prints is a measurement of this run, or a
// parameter the run was made with, or one of the goals below.
type report struct {
	cfg        config
	start, end time.Time
	machine    machine
	loadEnd    string
	skipped    []string // sections asked for but not run: they need root
	engines    []bench.Engine
	noPostgres string // why PostgreSQL was not measured, when it was not

	apply    []bench.ApplyResult
	store    []bench.StoreApplyResult
	commit   *bench.CommitResults
	datapath *bench.DatapathResults
	api      *bench.APIResults
	put      *bench.PutResults
	console  *bench.ConsoleResults
	binary   *bench.BinaryResults
	fleet    *bench.FleetResults
	goBench  []goBenchResult
}

// engineNames are the engines the api, put and commit sections compare,
// in the order of their tables.
var engineNames = []string{"SQLite", "PostgreSQL"}

// The project's performance goals: the only figures of the report that are
// not measured. Each target line compares one with this run's figure.
const (
	goalIncremental = 5 * time.Millisecond   // compile + netlink apply of a one-rule change, at most
	goalToKernel    = 5 * time.Millisecond   // store commit until the kernel holds it, at most
	goalFullVsNFT   = 0.6                    // full resync over netlink / nft -f, at most
	goalFullVsIPT   = 1.0                    // full resync / iptables-restore, under
	goalDatapath    = 0.9                    // connections/s, most servers / fewest, at least
	goalAPIvsBare   = 0.5                    // real API / bare Echo, requests/s, GET one group, at least
	goalListVsBare  = 0.2                    // the same, GET a page of 100 groups, at least
	goalPutRate     = 300.0                  // PUTs/s until the kernel holds them, at least, on each engine
	goalPassVsNFT   = 0.5                    // the reconciler's pass / nft -f of the group's chains, at most
	goalFleetP99    = time.Second            // commit until every agent's kernel holds it, p99, at most
	goalFleetAim    = 250 * time.Millisecond // the same, what to aim for
	goalConsole     = 10 * time.Millisecond  // server time of a console page, at most
	goalStart       = 200 * time.Millisecond // exec until the first /healthz 200, at most
	goalRSSkB       = 40 * 1024              // idle VmRSS, at most
)

// target is one line of the summary. got is empty when the figure was not
// measured in this run.
type target struct {
	key, what, goal, got string
	met                  bool
}

// Ms formats a duration in milliseconds with its unit.
func Ms(d time.Duration) string { return bench.Ms(d) + " ms" }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func rateRatio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func times(x float64) string { return fmt.Sprintf("%.2f×", x) }

func mb(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

func scaleLabel(s bench.Scale) string {
	return fmt.Sprintf("%d × %d × %d", s.Servers, s.Groups, s.Rules)
}

func medianInt(xs []int64) int64 {
	f := make([]float64, len(xs))
	for i, x := range xs {
		f[i] = float64(x)
	}
	return int64(bench.MedianFloat(f))
}

// largest returns the index of the largest scale point in scales, -1 if
// there is none.
func largest(scales []bench.Scale) int {
	best := -1
	for i, s := range scales {
		if best < 0 || s.Groups*s.Rules > scales[best].Groups*scales[best].Rules ||
			s.Groups*s.Rules == scales[best].Groups*scales[best].Rules && s.Servers > scales[best].Servers {
			best = i
		}
	}
	return best
}

func (r *report) largestApply() *bench.ApplyResult {
	scales := make([]bench.Scale, len(r.apply))
	for i, a := range r.apply {
		scales[i] = a.Scale
	}
	if i := largest(scales); i >= 0 {
		return &r.apply[i]
	}
	return nil
}

func (r *report) largestStore() *bench.StoreApplyResult {
	scales := make([]bench.Scale, len(r.store))
	for i, s := range r.store {
		scales[i] = s.Scale
	}
	if i := largest(scales); i >= 0 {
		return &r.store[i]
	}
	return nil
}

// dpPair returns the datapath results of kind with the fewest and the most
// servers, nil when kind was measured with one server count only.
func (r *report) dpPair(kind string) (few, many *bench.DatapathResult) {
	if r.datapath == nil {
		return nil, nil
	}
	for i := range r.datapath.Configs {
		d := &r.datapath.Configs[i]
		if d.Config.Kind != kind {
			continue
		}
		if few == nil || d.Config.Servers < few.Config.Servers {
			few = d
		}
		if many == nil || d.Config.Servers > many.Config.Servers {
			many = d
		}
	}
	if few == many {
		return nil, nil
	}
	return few, many
}

func (r *report) targets() []target {
	var ts []target
	add := func(key, what, goal string, measured bool, got string, met bool) {
		if !measured {
			got, met = "", false
		}
		ts = append(ts, target{key, what, goal, got, met})
	}
	a, s := r.largestApply(), r.largestStore()
	{
		what := "Incremental apply, compile + netlink, isolated"
		if a != nil {
			what += " (" + scaleLabel(a.Scale) + ")"
			inc := a.Incremental.Median()
			add("incremental", what, "≤ "+Ms(goalIncremental), true, Ms(inc), inc <= goalIncremental)
		} else {
			add("incremental", what, "≤ "+Ms(goalIncremental), false, "", false)
		}
	}
	{
		what := "Incremental, store commit → kernel"
		if s != nil {
			m := s.ToKernel.Median()
			add("tokernel", what+" ("+scaleLabel(s.Scale)+")", "≤ "+Ms(goalToKernel), true, Ms(m), m <= goalToKernel)
		} else {
			add("tokernel", what, "≤ "+Ms(goalToKernel), false, "", false)
		}
	}
	if a != nil {
		f, n, i := a.Full.Median(), a.NFT.Median(), a.IPT.Median()
		sc := " (" + scaleLabel(a.Scale) + ")"
		add("fullnft", "Full resync over netlink vs `nft -f`"+sc, fmt.Sprintf("≤ %g×", goalFullVsNFT), true,
			fmt.Sprintf("%s (%s vs %s)", times(ratio(f, n)), Ms(f), Ms(n)), ratio(f, n) <= goalFullVsNFT)
		add("fullipt", "Full resync vs iptables-restore, linear"+sc, fmt.Sprintf("< %g×", goalFullVsIPT), true,
			fmt.Sprintf("%s (%s vs %s)", times(ratio(f, i)), Ms(f), Ms(i)), ratio(f, i) < goalFullVsIPT)
	} else {
		add("fullnft", "Full resync over netlink vs `nft -f`", fmt.Sprintf("≤ %g×", goalFullVsNFT), false, "", false)
		add("fullipt", "Full resync vs iptables-restore, linear", fmt.Sprintf("< %g×", goalFullVsIPT), false, "", false)
	}
	if few, many := r.dpPair("nftables"); few != nil {
		x := rateRatio(many.Rate(), few.Rate())
		add("datapath", fmt.Sprintf("TCP connections/s, %d servers vs %d", many.Config.Servers, few.Config.Servers), fmt.Sprintf("≥ %g×", goalDatapath), true,
			fmt.Sprintf("%s (%.0f vs %.0f/s)", times(x), many.Rate(), few.Rate()), x >= goalDatapath)
	} else {
		add("datapath", "TCP connections/s, many servers vs one", fmt.Sprintf("≥ %g×", goalDatapath), false, "", false)
	}
	{
		sc := ""
		if c := r.commit; c != nil {
			sc = " (" + scaleLabel(c.Scale) + ")"
		}
		for _, name := range engineNames {
			what := "Reconciler's pass vs `nft -f` of the group's chains, " + name + sc
			goal := fmt.Sprintf("≤ %g×", goalPassVsNFT)
			if e := r.commitEngine(name); e != nil {
				pass, nft := e.Pass.Median(), r.commit.NFT.Median()
				add("pass:"+name, what, goal, true, fmt.Sprintf("%s (%s vs %s)", times(ratio(pass, nft)), Ms(pass), Ms(nft)),
					ratio(pass, nft) <= goalPassVsNFT)
			} else {
				add("pass:"+name, what, goal, false, "", false)
			}
		}
	}
	for _, name := range engineNames {
		getGoal, listGoal := fmt.Sprintf("≥ %g×", goalAPIvsBare), fmt.Sprintf("≥ %g×", goalListVsBare)
		if e := r.apiEngine(name); e != nil {
			p := r.api
			g := rateRatio(e.Get.Rate(), p.GetBare.Rate())
			l := rateRatio(e.List.Rate(), p.ListBare.Rate())
			add("apiget:"+name, "API GET one group vs bare Echo, "+name, getGoal, true,
				fmt.Sprintf("%s (%.0f vs %.0f req/s)", times(g), e.Get.Rate(), p.GetBare.Rate()), g >= goalAPIvsBare)
			add("apilist:"+name, fmt.Sprintf("API GET %d groups vs bare Echo, %s", p.PerPage, name), listGoal, true,
				fmt.Sprintf("%s (%.0f vs %.0f req/s)", times(l), e.List.Rate(), p.ListBare.Rate()), l >= goalListVsBare)
		} else {
			add("apiget:"+name, "API GET one group vs bare Echo, "+name, getGoal, false, "", false)
			add("apilist:"+name, "API GET a page of groups vs bare Echo, "+name, listGoal, false, "", false)
		}
	}
	for _, name := range engineNames {
		goal := fmt.Sprintf("≥ %g/s", goalPutRate)
		if e := r.putEngine(name); e != nil {
			add("put:"+name, fmt.Sprintf("API PUT %d rules until the kernel holds them, %s (nftables in a namespace)", r.put.Rules, name),
				goal, true, fmt.Sprintf("%.0f/s", e.Load.Rate()), e.Load.Rate() >= goalPutRate)
		} else {
			add("put:"+name, "API PUT of rules until the kernel holds them, "+name+" (nftables in a namespace)", goal, false, "", false)
		}
	}
	if c := r.console; c != nil {
		add("consolelist", fmt.Sprintf("Console list page, %d groups (server time)", c.ListGroups), "≤ "+Ms(goalConsole), true,
			Ms(c.List.Median()), c.List.Median() <= goalConsole)
		add("consoledetail", fmt.Sprintf("Console detail page, %d rules (server time)", c.DetailRules), "≤ "+Ms(goalConsole), true,
			Ms(c.Detail.Median()), c.Detail.Median() <= goalConsole)
	} else {
		add("consolelist", "Console list page (server time)", "≤ "+Ms(goalConsole), false, "", false)
		add("consoledetail", "Console detail page (server time)", "≤ "+Ms(goalConsole), false, "", false)
	}
	if b := r.binary; b != nil {
		add("start", fmt.Sprintf("Exec → first `/healthz` `200 OK` (%d groups, preview)", b.Loaded.Groups), "≤ "+Ms(goalStart), true,
			Ms(b.StartLoaded.Median()), b.StartLoaded.Median() <= goalStart)
		what := fmt.Sprintf("Exec → first `/healthz` `200 OK` (%d groups, nftables in a namespace)", b.Loaded.Groups)
		add("startnft", what, "≤ "+Ms(goalStart), len(b.StartNFT) > 0, Ms(b.StartNFT.Median()), b.StartNFT.Median() <= goalStart)
		rss := medianInt(b.RSSAfterLoad)
		add("rss", fmt.Sprintf("RSS idle, %d groups loaded and read", b.Loaded.Groups), "≤ "+mb(goalRSSkB), len(b.RSSAfterLoad) > 0, mb(rss), rss <= goalRSSkB)
	} else {
		add("start", "Exec → first `/healthz` `200 OK` (preview)", "≤ "+Ms(goalStart), false, "", false)
		add("startnft", "Exec → first `/healthz` `200 OK` (nftables in a namespace)", "≤ "+Ms(goalStart), false, "", false)
		add("rss", "RSS idle, groups loaded and read", "≤ "+mb(goalRSSkB), false, "", false)
	}
	if f := r.fleet; f != nil {
		p99 := f.All.Percentile(99)
		what := fmt.Sprintf("Commit → every agent's kernel, p99 of %d changes, %d agents", len(f.All), f.Config.Agents)
		add("fleet", what+" (required)", "≤ "+Ms(goalFleetP99), true, Ms(p99), p99 <= goalFleetP99)
		add("fleetaim", what+" (aim)", "≤ "+Ms(goalFleetAim), true, Ms(p99), p99 <= goalFleetAim)
	} else {
		add("fleet", "Commit → every agent's kernel, p99 (required)", "≤ "+Ms(goalFleetP99), false, "", false)
		add("fleetaim", "Commit → every agent's kernel, p99 (aim)", "≤ "+Ms(goalFleetAim), false, "", false)
	}
	return ts
}

// apiEngine, putEngine and commitEngine return the figures of the engine
// called name, nil when it was not measured.
func (r *report) apiEngine(name string) *bench.EngineAPI {
	if r.api == nil {
		return nil
	}
	for i := range r.api.Engines {
		if r.api.Engines[i].Engine == name {
			return &r.api.Engines[i]
		}
	}
	return nil
}

func (r *report) putEngine(name string) *bench.EnginePut {
	if r.put == nil {
		return nil
	}
	for i := range r.put.Engines {
		if r.put.Engines[i].Engine == name {
			return &r.put.Engines[i]
		}
	}
	return nil
}

func (r *report) commitEngine(name string) *bench.EngineCommit {
	if r.commit == nil {
		return nil
	}
	for i := range r.commit.Engines {
		if r.commit.Engines[i].Engine == name {
			return &r.commit.Engines[i]
		}
	}
	return nil
}

// spread is the widest spread between the runs of one figure in the report:
// (max − min) / median, and which figure it was.
func (r *report) spread() (float64, string) {
	var worst float64
	var what string
	consider := func(name string, xs []float64) {
		if len(xs) < 2 {
			return
		}
		m := bench.MedianFloat(xs)
		if m == 0 {
			return
		}
		if s := (slices.Max(xs) - slices.Min(xs)) / m; s > worst {
			worst, what = s, name
		}
	}
	durs := func(s bench.Sample) []float64 {
		f := make([]float64, len(s))
		for i, d := range s {
			f[i] = float64(d)
		}
		return f
	}
	for _, a := range r.apply {
		sc := scaleLabel(a.Scale)
		consider("full resync at "+sc, durs(a.Full))
		consider("nft -f at "+sc, durs(a.NFT))
		consider("iptables-restore at "+sc, durs(a.IPT))
	}
	if r.datapath != nil {
		for _, d := range r.datapath.Configs {
			consider(fmt.Sprintf("datapath, %s, %d servers", d.Config.Name, d.Config.Servers), d.Rates)
		}
	}
	if p := r.api; p != nil {
		consider("API, GET one group, "+p.GetBare.Name, p.GetBare.RPS)
		consider(fmt.Sprintf("API, GET %d groups, %s", p.PerPage, p.ListBare.Name), p.ListBare.RPS)
		for _, e := range p.Engines {
			for _, l := range []bench.LoadResult{e.Get, e.List, e.Put} {
				consider("API, "+l.Name, l.RPS)
			}
		}
	}
	if p := r.put; p != nil {
		for _, e := range p.Engines {
			consider("API, "+e.Load.Name, e.Load.RPS)
		}
	}
	if c := r.commit; c != nil {
		consider("nft -f of a group's chains", durs(c.NFT))
	}
	return worst, what
}

func runsMs(s bench.Sample) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = bench.Ms(d)
	}
	return strings.Join(parts, ", ")
}

func runsRate(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, ", ")
}

// distinct returns the distinct values of f over scales, in order.
func distinct(scales []bench.Scale, f func(bench.Scale) int) string {
	var vs []int
	for _, s := range scales {
		if v := f(s); !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ", ")
}

func (r *report) write(w *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	m := r.machine
	p("# Benchmarks\n\n")
	p("Generated by `%s` (`bench/cmd/benchreport`) on %s, in %s. Every figure below was measured in this run,\n",
		r.cfg.command, r.start.UTC().Format("2006-01-02 15:04 MST"), r.end.Sub(r.start).Round(time.Second))
	p("or is a parameter it was made with, or a goal of the targets table. Each figure is the median of its runs (their\n")
	p("number is given with each table), after one unrecorded warm-up round; compared configurations were measured\n")
	p("side by side, taking turns in alternating order (A B, B A, A B, …), and ratios are ratios of those medians.\n")
	p("Every timed answer was checked (HTTP status and body, the kernel's ruleset and rule counters): a wrong one\n")
	p("stops the benchmark, so that no figure here is the speed of an error.\n\n")
	p("| machine | |\n|---|---|\n")
	p("| CPUs (nproc) | %d |\n| CPU model | %s |\n| memory | %s |\n| kernel | %s |\n| Go | %s |\n| nft | %s |\n| iptables | %s |\n",
		m.nproc, m.cpu, m.mem, m.kernel, m.goVer, m.nft, m.iptables)
	p("| load average (1, 5, 15 min) | %s at start, %s at the end |\n\n", m.loadAt, r.loadEnd)
	p("The machine is shared (other builds and tests run beside it).")
	if s, what := r.spread(); what != "" {
		p(" In this run, the widest spread between the runs of one figure,\n(max − min) / median, was %.0f %% (%s): compare single figures with that in mind;\nratios of figures measured side by side are steadier.", 100*s, what)
	}
	p("\nReproduce with `%s` as root (it creates and deletes its own network namespaces and never touches the\n", r.cfg.command)
	p("host's ruleset); `go run ./bench/cmd/benchreport -h` lists the options.\n\n")
	if r.cfg.quick {
		p("> Smoke run (`-quick`): the smallest matrix and short runs, to check the harness; these are not the figures of a\n")
		p("> full `%s`.\n\n", r.cfg.command)
	}
	if len(r.skipped) > 0 {
		p("> Not run as root: the %s sections were not measured (they need network namespaces).\n\n", strings.Join(r.skipped, ", "))
	}

	p("## Targets\n\n| what | target | measured | |\n|---|---|---|---|\n")
	for _, t := range r.targets() {
		switch {
		case t.got == "":
			p("| %s | %s | not measured in this run | |\n", t.what, t.goal)
		case t.met:
			p("| %s | %s | %s | met |\n", t.what, t.goal, t.got)
		default:
			p("| %s | %s | %s | **missed** |\n", t.what, t.goal, t.got)
		}
	}
	p("\n")

	r.writeApply(w)
	r.writeStore(w)
	r.writeCommit(w)
	r.writeDatapath(w)
	r.writeAPI(w)
	r.writeConsole(w)
	r.writeBinary(w)
	r.writeFleet(w)
	r.writeGoBench(w)
	r.writeRemaining(w)
}

// notMeasured says why a section has no figures.
func (r *report) notMeasured(w *strings.Builder, section string) {
	if slices.Contains(r.skipped, section) {
		fmt.Fprintf(w, "Not measured in this run: it needs root.\n\n")
		return
	}
	fmt.Fprintf(w, "Not measured in this run (not in `-sections`).\n\n")
}

func (r *report) writeApply(w *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## 1. Enforcer apply\n\n")
	if len(r.apply) == 0 {
		r.notMeasured(w, "enforcer")
		return
	}
	scales := make([]bench.Scale, len(r.apply))
	for i, a := range r.apply {
		scales[i] = a.Scale
	}
	p("Synthetic desired state (`bench.Snapshot`): every group stateful, inbound drop, SMTP blocked; its rules half\n")
	p("inbound, half outbound, TCP, UDP port ranges, ICMP and ANY in turn, one address range in five IPv6;\n")
	p("server *n* in group *n* mod *groups* behind interface `vm<n>`. Scale points: servers %s; groups %s; rules per group %s\n",
		distinct(scales, func(s bench.Scale) int { return s.Servers }), distinct(scales, func(s bench.Scale) int { return s.Groups }),
		distinct(scales, func(s bench.Scale) int { return s.Rules }))
	p("(here and in the store table), each in a fresh network namespace. The three full loads take turns in each round,\n")
	p("in alternating order; median of %d runs each.\n\n", len(r.apply[0].Full))
	p("- **incremental**: one rule of one group changes; compile with the reconciler's `enforcer.Compiler` + `Apply(prev, next)`\n")
	p("  over netlink. *Isolated* (median of %d): after each, untimed, the changed chain is listed from the kernel with `nft` and\n", len(r.apply[0].Incremental))
	p("  must hold the new port, so the kernel rests a moment between applies, as between changes made one at a time.\n")
	p("  *Back to back* (median of %d), as under a stream of changes: each apply's answer is the kernel's acknowledgement of\n", len(r.apply[0].Burst))
	p("  its batch, and the last change of each burst is read back. The two take turns in rounds, in alternating order.\n")
	p("- **full resync**: `enforcer.Compile` from scratch + `Apply(nil, rs)`: the table deleted and rebuilt in one transaction.\n")
	p("- **nft -f**: the same ruleset as text (`Ruleset.Text()`, the preview) loaded with `nft -f` (it also replaces the table atomically).\n")
	p("- **iptables-restore**: the linear equivalent (`bench.IPTablesRestore`): the same group chains and rules, dispatched by one\n")
	p("  `-i vmN -j gK_out` and one `-o vmN -j gK_in` rule per server in `FORWARD`, loaded with `iptables-restore` then\n")
	p("  `ip6tables-restore` (IPv4 and IPv6 rules; both timed). Commands are forked straight into the namespace (no `ip netns exec`).\n")
	p("- After each full load, untimed, the kernel is read back: the table dumped over netlink and compared chain by chain\n")
	p("  with the ruleset (`Verify` of a backend that never applied, so it cannot trust a generation), or `iptables-save`\n")
	p("  and `ip6tables-save` rule counts.\n\n")
	p("| servers | groups | rules/group | kernel rules | incremental, isolated | incremental, back to back | full resync (netlink) | nft -f | iptables-restore (linear) | netlink / nft | netlink / iptables |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, a := range r.apply {
		f, n, i := a.Full.Median(), a.NFT.Median(), a.IPT.Median()
		p("| %d | %d | %d | %d | %s | %s | %s | %s | %s (%d rules) | %s | %s |\n",
			a.Scale.Servers, a.Scale.Groups, a.Scale.Rules, a.KernelRules,
			Ms(a.Incremental.Median()), Ms(a.Burst.Median()), Ms(f), Ms(n), Ms(i), a.IPTRules, times(ratio(f, n)), times(ratio(f, i)))
	}
	if a := r.largestApply(); a != nil {
		p("\nRuns at %s (ms): full resync %s; nft -f %s; iptables-restore %s. Incremental p90: isolated %s, back to back %s.\n",
			scaleLabel(a.Scale), runsMs(a.Full), runsMs(a.NFT), runsMs(a.IPT), Ms(a.Incremental.Percentile(90)), Ms(a.Burst.Percentile(90)))
	}
	p("\n")
}

func (r *report) writeStore(w *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("### Store commit → kernel\n\n")
	if len(r.store) == 0 {
		r.notMeasured(w, "store")
		return
	}
	p("The whole path: a store filled through its public methods (`bench.Populate`), the reconciler running with the nftables\n")
	p("backend in a namespace; the time from calling `store.CreateRule` until `Reconciler.GroupGeneration` reaches the\n")
	p("commit's generation (median of %d); then, untimed, the group's chain is read from the kernel over netlink and must hold\n", len(r.store[0].ToKernel))
	p("the new rule, and the rule is deleted again before the next round. The reconciler reads only what changed\n")
	p("(`store.SnapshotSince`); a whole `store.Snapshot` is timed apart in the last column for comparison.\n\n")
	p("| servers | groups | rules/group | CreateRule (commit) | call → kernel | p90 | reconciler pass (read + compile + apply) | whole store.Snapshot |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.store {
		p("| %d | %d | %d | %s | %s | %s | %s | %s |\n", s.Scale.Servers, s.Scale.Groups, s.Scale.Rules,
			Ms(s.Commit.Median()), Ms(s.ToKernel.Median()), Ms(s.ToKernel.Percentile(90)), Ms(s.LastApply.Median()), Ms(s.Snapshot.Median()))
	}
	p("\n")
}

func (r *report) writeDatapath(w *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## 2. Datapath\n\n")
	d := r.datapath
	if d == nil || len(d.Configs) == 0 {
		r.notMeasured(w, "datapath")
		return
	}
	most := 0
	for _, c := range d.Configs {
		most = max(most, c.Config.Servers)
	}
	p("Three namespaces: client — router — server (veth pairs); the ruleset runs in the router. %d goroutines in the client\n", d.Workers)
	p("namespace connect to a Go accept loop in the server namespace and close (RST, so that no `TIME_WAIT` runs out of\n")
	p("ports), for %s per run; the configurations take turns in each round, in alternating order (median of %d runs).\n", d.Duration, len(d.Configs[0].Rates))
	p("The server's group has %d rules that do not match the client and then accepts `tcp dport %d`, so a new connection walks\n", d.GroupRules, d.Port)
	p("the whole chain; established packets are accepted by the group's first rule (stateful). With %d servers, the other\n", most)
	p("%d are map entries for interfaces that do not exist, spread over %d groups of %d rules. The iptables variant is the\n", most-1, d.Groups, d.GroupRules)
	p("linear equivalent (`bench.IPTablesRestore`, iptables-nft): with %d servers, %d dispatch rules (`-i`, `-o`) in `FORWARD`,\n", most, 2*most)
	p("the server's own last (its interface sorts last), which every packet walks.\n\n")
	p("Each run reads the packet counter of the rule that accepts the client's connections (over netlink, or `iptables-save -c`)\n")
	p("before and after, and fails unless it moved by at least the connections made: the traffic went through the ruleset\n")
	p("under test. Without a ruleset, the router's `nft list ruleset` must be empty. Any failed connection attempt fails the run.\n\n")
	p("| ruleset | servers | rules | connections/s | vs fewest servers, same kind | vs no ruleset | accepting rule's packets / connections | runs (conn/s) |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---|\n")
	var none *bench.DatapathResult
	for i := range d.Configs {
		if d.Configs[i].Config.Kind == "none" {
			none = &d.Configs[i]
		}
	}
	for _, c := range d.Configs {
		rel, vsNone, counted := "", "", "no ruleset (checked empty)"
		// A baseline's ratio to itself is left empty: it is no measurement.
		if few, _ := r.dpPair(c.Config.Kind); few != nil && c.Config.Kind != "none" && few.Config != c.Config {
			rel = times(rateRatio(c.Rate(), few.Rate()))
		}
		if none != nil && c.Config.Kind != "none" {
			vsNone = times(rateRatio(c.Rate(), none.Rate()))
		}
		if c.Config.Kind != "none" {
			var acc, conns float64
			for i := range c.Accepted {
				acc += float64(c.Accepted[i])
				conns += float64(c.Conns[i])
			}
			counted = fmt.Sprintf("%.2f", acc/math.Max(conns, 1))
		}
		p("| %s | %d | %d | %.0f | %s | %s | %s | %s |\n", c.Config.Name, c.Config.Servers, c.Rules, c.Rate(), rel, vsNone, counted, runsRate(c.Rates))
	}
	p("\n")
}

// writeEngines says which engines the api, put and commit sections ran
// on, and how each was set up.
func (r *report) writeEngines(w *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	for _, e := range r.engines {
		p("- **%s**: %s.\n", e.Name, e.Detail)
	}
	if r.noPostgres != "" {
		p("- **PostgreSQL**: not measured in this run: %s.\n", r.noPostgres)
	}
	p("\n")
}

func (r *report) writeAPI(w *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## 3. API\n\n")
	if a := r.api; a == nil {
		r.notMeasured(w, "api")
	} else {
		p("The real server (`web.New` with the store and a reconciler on the **preview** backend, logs formatted as JSON to nowhere)\n")
		p("on loopback HTTP, with %d groups of %d rules in one organization, authenticated with `X-Auth-Token`, on each engine:\n", a.Scale.Groups, a.Scale.Rules)
		p("the store is filled on SQLite, then copied row by row to PostgreSQL (`store.Copy`, as `rampart db copy`), so that both\n")
		p("serve the same rows, IDs and token.\n\n")
		r.writeEngines(w)
		p("The bare handler is `echo.New()` with a route of the same shape answering the first engine's bytes with `c.JSONBlob`.\n")
		p("In-process load generator: %d goroutines with keep-alive connections, %s per run; the real server on each engine and\n", a.Workers, a.Duration)
		p("the bare handler take turns in alternating order (median of %d runs).\n", len(a.GetBare.RPS))
		p("Every answer is read and checked (status `200 OK`, the answer's top-level key and group ID, or the number of groups or rules\n")
		p("it lists); the first wrong one stops the benchmark. The PUT here replaces the rules of a group (each goroutine its own\n")
		p("group, two rule sets in turn) with the preview backend, which applies nothing to a kernel: a run ends when the reconciler\n")
		p("has compiled the last change, and that wait is counted. The PUT with the kernel is below.\n\n")
		p("| request | body | req/s | p50 | p99 | vs bare |\n|---|---:|---:|---:|---:|---:|\n")
		row := func(x bench.LoadResult, bare *bench.LoadResult) {
			rel := ""
			if bare != nil {
				rel = times(rateRatio(x.Rate(), bare.Rate()))
			}
			p("| %s | %d B | %.0f | %s | %s | %s |\n", x.Name, x.Bytes, x.Rate(), Ms(x.P50.Median()), Ms(x.P99.Median()), rel)
		}
		for _, e := range a.Engines {
			row(e.Get, &a.GetBare)
		}
		row(a.GetBare, nil)
		for _, e := range a.Engines {
			row(e.List, &a.ListBare)
		}
		row(a.ListBare, nil)
		for _, e := range a.Engines {
			row(e.Put, nil)
		}
		p("\n")
		for _, e := range a.Engines {
			p("PUT with the preview backend on %s: after the last answer, the reconciler needed %s more (median).\n", e.Engine, Ms(e.PutApply.Median()))
		}
		p("\n")
	}

	p("### PUT of rules until the kernel holds them\n\n")
	u := r.put
	if u == nil {
		r.notMeasured(w, "put")
		return
	}
	p("`ip netns exec NS %s serve --enforcer nftables`, one per engine, each in a network namespace the benchmark creates,\n", r.cfg.bin)
	p("on a database of %d groups of %d rules and %d servers (%d kernel rules; made on SQLite, copied to PostgreSQL), over\n", u.Scale.Groups, u.Scale.Rules, u.Scale.Servers, u.KernelRules)
	p("HTTP into the namespace; the engines take turns in alternating order. Each PUT replaces a group's\n")
	p("rules with %d others and is timed until `GET` of the group answers `\"state\":\"available\"`, which the server reports\n", u.Rules)
	p("once the nftables transaction holding the group's new generation has been committed. Then, untimed, the group's\n")
	p("two chains are read from the kernel over netlink: they must hold exactly the rules of the PUT's answer (and the\n")
	p("group's fixed rules), none of those it replaced.\n\n")
	p("| one PUT at a time | runs | PUT answered | p90 | PUT sent → kernel holds it | p90 |\n|---|---:|---:|---:|---:|---:|\n")
	for _, e := range u.Engines {
		p("| %s | %d | %s | %s | %s | %s |\n", e.Engine, len(e.ToKernel), Ms(e.Answer.Median()), Ms(e.Answer.Percentile(90)),
			Ms(e.ToKernel.Median()), Ms(e.ToKernel.Percentile(90)))
	}
	p("\nUnder load: %d connections, each PUTting to a group of its own for %s; a run is counted until every group written\n", u.Workers, u.Duration)
	p("reads \"available\" (median of %d runs).\n\n", len(u.Engines[0].Load.RPS))
	p("| request | body | PUTs/s, until in the kernel | p50 (answer) | p99 (answer) | last answer → all in the kernel | runs (PUT/s) |\n")
	p("|---|---:|---:|---:|---:|---:|---|\n")
	for _, e := range u.Engines {
		p("| %s | %d B | %.0f | %s | %s | %s | %s |\n", e.Load.Name, e.Load.Bytes, e.Load.Rate(), Ms(e.Load.P50.Median()), Ms(e.Load.P99.Median()),
			Ms(e.Settle.Median()), runsRate(e.Load.RPS))
	}
	p("\n")
}

func (r *report) writeCommit(w *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("### Commit → kernel on each engine, beside `nft -f`\n\n")
	c := r.commit
	if c == nil || len(c.Engines) == 0 {
		r.notMeasured(w, "commit")
		return
	}
	p("A store at %s (%d kernel rules), filled on SQLite and copied to PostgreSQL; on each engine, a reconciler with the\n", scaleLabel(c.Scale), c.KernelRules)
	p("nftables backend in a namespace of its own. One rule is created in one group with `store.CreateRule` and timed until the\n")
	p("reconciler reports the group's generation applied; then, untimed, the group's chain is read from the kernel over netlink\n")
	p("and must hold the rule, which is deleted again. Beside them, in the same rounds and taking turns in alternating order,\n")
	p("`nft -f` of a script that flushes the same group's two chains and fills them again with the rule added (%d kernel rules,\n", c.GroupRules)
	p("%d bytes) in one transaction, in a third namespace holding the same table: what the reconciler's netlink batch does.\n", c.ScriptBytes)
	p("Each is read back from the kernel (untimed). The commit is the engine's own: SQLite's `synchronous(FULL)` fsync, PostgreSQL's\n")
	p("WAL flush. The reconciler's pass is its incremental read of the store, the compile and the netlink apply. Median of %d changes each.\n\n", len(c.NFT))
	r.writeEngines(w)
	p("| engine | commit (`CreateRule`) | reconciler's pass | call → kernel | p90 | pass / `nft -f` | whole `store.Snapshot` |\n")
	p("|---|---:|---:|---:|---:|---:|---:|\n")
	nft := c.NFT.Median()
	for _, e := range c.Engines {
		p("| %s | %s | %s | %s | %s | %s | %s |\n", e.Engine, Ms(e.Commit.Median()), Ms(e.Pass.Median()), Ms(e.ToKernel.Median()),
			Ms(e.ToKernel.Percentile(90)), times(ratio(e.Pass.Median(), nft)), Ms(e.Snapshot.Median()))
	}
	p("| `nft -f` of the group's chains | | | %s | %s | | |\n\n", Ms(nft), Ms(c.NFT.Percentile(90)))
}

func (r *report) writeFleet(w *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## 6. Hosts and agents\n\n")
	f := r.fleet
	if f == nil {
		r.notMeasured(w, "fleet")
		return
	}
	cfg := f.Config
	p("`ip netns exec NS %s serve --enforcer nftables --agent-listen …` (the console, SQLite) in a namespace holding a bridge, and\n", r.cfg.bin)
	p("%d hosts, each a namespace of its own with a veth pair onto the bridge and its agent: %d in the benchmark's process (`agent.New`,\n", cfg.Agents, f.InProcess)
	p("the nftables backend in the host's namespace, connections dialled from there), %d as `%s agent` run in its\n", cfg.Agents-f.InProcess, r.cfg.bin)
	p("namespace, as a host runs it. Every host holds a server in a shared group of %d rules and one in a group of its own of %d rules;\n", cfg.SharedRules, cfg.OwnRules)
	p("its full view is a frame of %d bytes. From exec of the console until the shared group read `available` (every agent enrolled,\n", f.ViewBytes)
	p("its view applied and reported): %s. The console's heartbeat is its default, every %s.\n\n", Ms(f.Setup), f.Heartbeat)
	p("Each change creates one rule in the shared group through the console's API (`POST …/rules`) and is timed from sending it\n")
	p("until every agent holds it: an in-process agent when its reconciler reports the group's generation applied (woken by\n")
	p("`Reconciler.Watch`; the reconciler records a generation once the kernel acknowledged its netlink batch), the binary agent when\n")
	p("its kernel, read over netlink every %s, holds the rule. Then, untimed, every agent's kernel is read and must hold the rule, which\n", f.Poll)
	p("is deleted again and waited for. %d changes after one warm-up, each after a pause of %s.\n\n", len(f.All), f.Pause)
	p("| from sending the POST | p50 | p99 | max |\n|---|---:|---:|---:|\n")
	p("| POST answered (the commit included) | %s | %s | %s |\n", Ms(f.Answer.Median()), Ms(f.Answer.Percentile(99)), Ms(slices.Max(f.Answer)))
	p("| **every agent's kernel holds it** (the last of %d) | **%s** | **%s** | %s |\n", cfg.Agents, Ms(f.All.Median()), Ms(f.All.Percentile(99)), Ms(slices.Max(f.All)))
	p("| each agent (%d agents × %d changes) | %s | %s | %s |\n", cfg.Agents, len(f.All), Ms(f.PerAgent.Median()), Ms(f.PerAgent.Percentile(99)), Ms(slices.Max(f.PerAgent)))
	p("| the binary agent, read from its kernel | %s | %s | %s |\n\n", Ms(f.Binary.Median()), Ms(f.Binary.Percentile(99)), Ms(slices.Max(f.Binary)))
	p("The reconciler's word checked against the kernel's: for one in-process agent per change, in turn, its kernel was read\n")
	p("over netlink the moment its reconciler reported the change applied, and held the new rule, and no other, all %d times.\n\n", f.Instant)
	p("Bytes sent to each agent for the one-rule change, over the %d changes of the %d whose window held no heartbeat (a heartbeat\n", f.Clean, len(f.All))
	p("would count as the change's): the view stream's frames as `Console.Traffic` counts them (read from the console's `/metrics`:\n")
	p("JSON, before TLS), and what each in-process agent's sockets received until the console had every agent's report of the change\n")
	p("(TLS records and `HTTP/2` frames, the answer to its report included). A delta carries the changed group whole\n")
	p("(`hostview.Delta`): its settings, its rules, the host's servers in it, and its members, every server of the group on\n")
	p("any host, so that what each agent is sent for one rule grows with the number of hosts holding the group.\n\n")
	p("| per agent, per change | median | min | max |\n|---|---:|---:|---:|\n")
	if f.Clean > 0 {
		p("| view stream (`Console.Traffic`) | %.0f B | %.0f B | %.0f B |\n", bench.MedianFloat(f.FrameBytes), slices.Min(f.FrameBytes), slices.Max(f.FrameBytes))
		p("| on the wire (TLS) | %.0f B | %.0f B | %.0f B |\n", bench.MedianFloat(f.WireBytes), slices.Min(f.WireBytes), slices.Max(f.WireBytes))
	} else {
		p("| view stream (`Console.Traffic`) | no change without a heartbeat | | |\n")
	}
	p("| reports received by the console, all agents | %.0f B | %.0f B | %.0f B |\n\n", bench.MedianFloat(f.ReportBytes), slices.Min(f.ReportBytes), slices.Max(f.ReportBytes))
	p("The console's process with the %d agents connected: CPU from `/proc/PID/task/*/schedstat`, memory from `/proc/PID/status`.\n", cfg.Agents)
	p("Idle: over %s without a change (%d frames and %d reports carried: heartbeats), after %s for the agents to settle.\n\n", cfg.Idle, f.IdleFrames, f.IdleReports, cfg.Settle)
	p("| process | CPU, idle | CPU per change (POST → every kernel) | RSS | peak RSS (VmHWM) |\n|---|---:|---:|---:|---:|\n")
	p("| console (`%s serve`) | %.1f %% of a core | %s | %s | %s |\n", r.cfg.bin, 100*f.IdleCPU, Ms(f.ChangeCPU.Median()), mb(f.ConsoleRSS), mb(f.ConsoleHWM))
	p("| agent (`%s agent`) | | | %s (after the changes: %s) | %s |\n\n", r.cfg.bin, mb(f.AgentRSS), mb(f.AgentRSSLate), mb(f.AgentHWM))
}

func (r *report) writeConsole(w *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## 4. Console\n\n")
	c := r.console
	if c == nil {
		r.notMeasured(w, "console")
		return
	}
	p("Server time of the real handler (`Server.ServeHTTP` into a recorder) with a session signed in through the login form\n")
	p("(median of %d renders, after one warm-up), same store as the API. Every render must answer `200 OK` and show every\n", len(c.List))
	p("group (list) or every rule (detail), found by ID in the HTML.\n\n")
	p("| page | shows | HTML | median | p90 |\n|---|---|---:|---:|---:|\n")
	p("| `GET /security-groups` | %d groups | %d KB | %s | %s |\n", c.ListGroups, c.ListBytes/1024, Ms(c.List.Median()), Ms(c.List.Percentile(90)))
	p("| `GET /security-groups/{id}` | %d rules | %d KB | %s | %s |\n\n", c.DetailRules, c.DetailBytes/1024, Ms(c.Detail.Median()), Ms(c.Detail.Percentile(90)))
	p("JavaScript and CSS a page loads, as served to a browser accepting gzip (each checked against the embedded file),\n")
	p("with the size of `gzip -6` of the file for comparison:\n\n")
	p("| file | served | encoding | `gzip -6` |\n|---|---:|---|---:|\n")
	var js, css, jsz, cssz int
	for _, a := range c.Page {
		enc := a.Encoding
		if enc == "" {
			enc = "none"
		}
		p("| `%s` | %d B | %s | %d B |\n", a.Path, a.Bytes, enc, a.Gzip)
		if strings.HasSuffix(a.Path, ".js") {
			js, jsz = js+a.Bytes, jsz+a.Gzip
		} else {
			css, cssz = css+a.Bytes, cssz+a.Gzip
		}
	}
	p("| **JavaScript** | **%d B** | | %d B |\n| **CSS** | **%d B** | | %d B |\n\n", js, jsz, css, cssz)
	var all int
	for _, a := range c.AllStatic {
		all += a.Bytes
	}
	p("All of `static/` (%d files, embedded in the binary): %d B.\n\n", len(c.AllStatic), all)
}

func (r *report) writeBinary(w *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## 5. Binary\n\n")
	b := r.binary
	if b == nil {
		r.notMeasured(w, "binary")
		return
	}
	p("`%s` as `make build` makes it (`CGO_ENABLED=0`, `-trimpath -ldflags \"-s -w\"`): **%.1f MB** (%d bytes).\n\n", r.cfg.bin, float64(b.Size)/(1<<20), b.Size)
	p("Start: time from exec of `rampart serve` to the first `/healthz` `200 OK` (which needs the store open and the first apply\n")
	p("done), polled every %s; empty and loaded starts take turns, in alternating order; median of %d starts. The loaded\n", b.Poll, len(b.StartLoaded))
	p("database holds %d groups of %d rules and %d servers.\n\n", b.Loaded.Groups, b.Loaded.Rules, b.Loaded.Servers)
	p("| start | median | p90 | min |\n|---|---:|---:|---:|\n")
	p("| empty database, preview | %s | %s | %s |\n", Ms(b.StartEmpty.Median()), Ms(b.StartEmpty.Percentile(90)), Ms(b.StartEmpty.Min()))
	p("| %d groups, preview | %s | %s | %s |\n", b.Loaded.Groups, Ms(b.StartLoaded.Median()), Ms(b.StartLoaded.Percentile(90)), Ms(b.StartLoaded.Min()))
	if len(b.StartNFT) > 0 {
		p("| %d groups, nftables (`ip netns exec` into a new namespace; the first full resync, %d kernel rules, included) | %s | %s | %s |\n",
			b.Loaded.Groups, b.KernelRules, Ms(b.StartNFT.Median()), Ms(b.StartNFT.Percentile(90)), Ms(b.StartNFT.Min()))
	} else {
		p("| %d groups, nftables | not measured in this run (needs root) | | |\n", b.Loaded.Groups)
	}
	if len(b.RSS) == 0 {
		p("\nMemory: not measured in this run.\n\n")
		return
	}
	p("\nMemory: VmRSS from `/proc/PID/status`, %s after `/healthz` answered, then again %s after reading all %d groups\n", b.Settle, b.Settle, b.Loaded.Groups)
	p("through the API, %d per request, every answer checked (`200 OK` and the groups of the page); median of %d starts, preview.\n\n", b.PerPage, len(b.RSS))
	p("| idle after start | idle after reading every group |\n|---:|---:|\n| %s | %s |\n\n", mb(medianInt(b.RSS)), mb(medianInt(b.RSSAfterLoad)))
}

func (r *report) writeGoBench(w *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## Go benchmarks\n\n")
	if len(r.goBench) == 0 {
		p("Not included in this run (`-gobench`).\n\n")
		return
	}
	if r.cfg.goBenchCmd != "" {
		p("`%s`, run just before the report (the scale is set in `enforcer/bench_test.go` and, for the packet log's and counters' writes, `store/observe_bench_test.go`; the kernel ones need root);\n", r.cfg.goBenchCmd)
	} else {
		p("The enforcer's and the store's Go benchmarks (`%s`; the scale is set in `enforcer/bench_test.go` and `store/observe_bench_test.go`);\n", r.cfg.goBench)
	}
	p("median of each benchmark's runs. Profile one with `-cpuprofile`, e.g.\n")
	p("`go test -run '^$' -bench ApplyOneGroupChange -benchtime 200x -cpuprofile cpu.out ./enforcer && go tool pprof -top cpu.out`.\n\n")
	p("| benchmark | median | runs (ms) | its own metrics (medians) |\n|---|---:|---|---|\n")
	for _, g := range r.goBench {
		runs := make([]string, len(g.nsOps))
		for i, x := range g.nsOps {
			runs[i] = bench.Ms(time.Duration(x))
		}
		metrics := make([]string, len(g.metrics))
		for i, m := range g.metrics {
			metrics[i] = strconv.FormatFloat(bench.MedianFloat(m.vals), 'g', 3, 64) + " " + m.unit
		}
		p("| %s | %s | %s | %s |\n", g.name, Ms(time.Duration(bench.MedianFloat(g.nsOps))), strings.Join(runs, ", "), strings.Join(metrics, ", "))
	}
	p("\n")
	p("Of the sets' benchmarks (`enforcer/sets_bench_test.go`, on an IP set of a hundred thousand entries): `kernel-ms` is the kernel's share of an apply (sendmsg to its acknowledgement), `ours-ms` the rest (compile, diff, encoding);\n")
	p("`effect-ms` the delay from an apply adding the client's address to the set to its first connection through; `conn/s-100k` and `conn/s-1` the TCP connections a second through a rule on that set and on a set of one entry, taking turns in one run, and `ratio` the first over the second.\n\n")
}
