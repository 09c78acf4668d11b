package main

import (
	"fmt"
	"math"
	"slices"
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

	apply    []bench.ApplyResult
	store    []bench.StoreApplyResult
	datapath *bench.DatapathResults
	api      *bench.APIResults
	put      *bench.PutResults
	console  *bench.ConsoleResults
	binary   *bench.BinaryResults
	goBench  []goBenchResult
}

// The project's performance goals: the only figures of the report that are
// not measured. Each target line compares one with this run's figure.
const (
	goalIncremental = 5 * time.Millisecond   // compile + netlink apply of a one-rule change, at most
	goalToKernel    = 5 * time.Millisecond   // store commit until the kernel holds it, at most
	goalFullVsNFT   = 0.6                    // full resync over netlink / nft -f, at most
	goalFullVsIPT   = 1.0                    // full resync / iptables-restore, under
	goalDatapath    = 0.9                    // connections/s, most servers / fewest, at least
	goalAPIvsBare   = 0.5                    // real API / bare Echo, requests/s, at least
	goalPutRate     = 300.0                  // PUTs/s until the kernel holds them, at least
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
	if p := r.api; p != nil {
		g := rateRatio(p.Get.Rate(), p.GetBare.Rate())
		l := rateRatio(p.List.Rate(), p.ListBare.Rate())
		add("apiget", "API GET one group vs bare Echo", fmt.Sprintf("≥ %g×", goalAPIvsBare), true,
			fmt.Sprintf("%s (%.0f vs %.0f req/s)", times(g), p.Get.Rate(), p.GetBare.Rate()), g >= goalAPIvsBare)
		add("apilist", fmt.Sprintf("API GET %d groups vs bare Echo", p.PerPage), fmt.Sprintf("≥ %g×", goalAPIvsBare), true,
			fmt.Sprintf("%s (%.0f vs %.0f req/s)", times(l), p.List.Rate(), p.ListBare.Rate()), l >= goalAPIvsBare)
	} else {
		add("apiget", "API GET one group vs bare Echo", fmt.Sprintf("≥ %g×", goalAPIvsBare), false, "", false)
		add("apilist", "API GET a page of groups vs bare Echo", fmt.Sprintf("≥ %g×", goalAPIvsBare), false, "", false)
	}
	if p := r.put; p != nil {
		add("put", fmt.Sprintf("API PUT %d rules until the kernel holds them (nftables in a namespace)", p.Rules),
			fmt.Sprintf("≥ %g/s", goalPutRate), true, fmt.Sprintf("%.0f/s", p.Load.Rate()), p.Load.Rate() >= goalPutRate)
	} else {
		add("put", "API PUT of rules until the kernel holds them (nftables in a namespace)", fmt.Sprintf("≥ %g/s", goalPutRate), false, "", false)
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
	return ts
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
		for _, l := range []bench.LoadResult{p.Get, p.GetBare, p.List, p.ListBare, p.Put} {
			consider("API, "+l.Name, l.RPS)
		}
	}
	if p := r.put; p != nil {
		consider("API, "+p.Load.Name, p.Load.RPS)
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
	r.writeDatapath(w)
	r.writeAPI(w)
	r.writeConsole(w)
	r.writeBinary(w)
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

func (r *report) writeAPI(w *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## 3. API\n\n")
	if a := r.api; a == nil {
		r.notMeasured(w, "api")
	} else {
		p("The real server (`web.New` with the store and a reconciler on the **preview** backend, logs formatted as JSON to nowhere)\n")
		p("on loopback HTTP, with %d groups of %d rules in one organization, authenticated with `X-Auth-Token`. The bare handler\n", a.Scale.Groups, a.Scale.Rules)
		p("is `echo.New()` with a route of the same shape answering the same bytes with `c.JSONBlob`. In-process load generator:\n")
		p("%d goroutines with keep-alive connections, %s per run, real and bare taking turns in alternating order (median of %d runs).\n", a.Workers, a.Duration, len(a.Get.RPS))
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
		row(a.Get, &a.GetBare)
		row(a.GetBare, nil)
		row(a.List, &a.ListBare)
		row(a.ListBare, nil)
		row(a.Put, nil)
		p("\nPUT with the preview backend: after the last answer, the reconciler needed %s more (median).\n\n", Ms(a.PutApply.Median()))
	}

	p("### PUT of rules until the kernel holds them\n\n")
	u := r.put
	if u == nil {
		r.notMeasured(w, "put")
		return
	}
	p("`ip netns exec NS %s serve --enforcer nftables` in a network namespace the benchmark creates, on a database of\n", r.cfg.bin)
	p("%d groups of %d rules and %d servers (%d kernel rules), over HTTP into the namespace. Each PUT replaces a group's\n", u.Scale.Groups, u.Scale.Rules, u.Scale.Servers, u.KernelRules)
	p("rules with %d others and is timed until `GET` of the group answers `\"state\":\"available\"`, which the server reports\n", u.Rules)
	p("once the nftables transaction holding the group's new generation has been committed. Then, untimed, the group's\n")
	p("two chains are read from the kernel over netlink: they must hold exactly the rules of the PUT's answer (and the\n")
	p("group's fixed rules), none of those it replaced.\n\n")
	p("| one PUT at a time (%d) | median | p90 |\n|---|---:|---:|\n", len(u.ToKernel))
	p("| PUT answered | %s | %s |\n", Ms(u.Answer.Median()), Ms(u.Answer.Percentile(90)))
	p("| PUT sent → kernel holds it | %s | %s |\n\n", Ms(u.ToKernel.Median()), Ms(u.ToKernel.Percentile(90)))
	p("Under load: %d connections, each PUTting to a group of its own for %s; a run is counted until every group written\n", u.Workers, u.Duration)
	p("reads \"available\" (median of %d runs).\n\n", len(u.Load.RPS))
	p("| request | body | PUTs/s, until in the kernel | p50 (answer) | p99 (answer) | last answer → all in the kernel | runs (PUT/s) |\n")
	p("|---|---:|---:|---:|---:|---:|---|\n")
	p("| %s | %d B | %.0f | %s | %s | %s | %s |\n\n", u.Load.Name, u.Load.Bytes, u.Load.Rate(), Ms(u.Load.P50.Median()), Ms(u.Load.P99.Median()),
		Ms(u.Settle.Median()), runsRate(u.Load.RPS))
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
	p("| benchmark | median | runs (ms) |\n|---|---:|---|\n")
	for _, g := range r.goBench {
		runs := make([]string, len(g.nsOps))
		for i, x := range g.nsOps {
			runs[i] = bench.Ms(time.Duration(x))
		}
		p("| %s | %s | %s |\n", g.name, Ms(time.Duration(bench.MedianFloat(g.nsOps))), strings.Join(runs, ", "))
	}
	p("\n")
}
