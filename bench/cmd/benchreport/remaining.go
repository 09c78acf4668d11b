package main

import (
	"fmt"
	"strings"
)

// writeRemaining lists the targets this run missed, each with the figure
// measured and what the tables say about where the time goes. It quotes
// only figures of this run's tables: what is not measured here is not
// stated as a figure.
func (r *report) writeRemaining(w *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("## What remains\n\n")
	var missed, unmeasured []target
	for _, t := range r.targets() {
		switch {
		case t.got == "":
			unmeasured = append(unmeasured, t)
		case !t.met:
			missed = append(missed, t)
		}
	}
	if len(missed) == 0 {
		p("Every target measured in this run is met.\n")
	}
	for _, t := range missed {
		p("- **%s**: %s, target %s.", t.what, t.got, t.goal)
		if why := r.why(t.key); why != "" {
			p(" %s", why)
		}
		p("\n")
	}
	if len(unmeasured) > 0 {
		names := make([]string, len(unmeasured))
		for i, t := range unmeasured {
			names[i] = t.what
		}
		p("- Not measured in this run, so neither met nor missed: %s.\n", strings.Join(names, "; "))
	}
	p("\n")
}

// why says, from this run's own figures, where the time of a missed
// target goes. Keys of per-engine targets end in ":" and the engine.
func (r *report) why(key string) string {
	key, engine, _ := strings.Cut(key, ":")
	switch key {
	case "incremental":
		if a := r.largestApply(); a != nil {
			return fmt.Sprintf("Back to back, the same change took %s: an apply after the kernel rested is slower than one in a stream. "+
				"Every nf_tables transaction that adds a rule also makes the kernel validate the whole table at commit, "+
				"following each verdict-map element into its chain, so a one-rule change pays for the whole table; "+
				"`nft` pays it as well.", Ms(a.Burst.Median()))
		}
	case "tokernel":
		if s := r.largestStore(); s != nil {
			return fmt.Sprintf("Measured from the call to `store.CreateRule`, it includes the commit itself (%s, `synchronous(FULL)`); "+
				"the reconciler's pass after it (incremental read, compile, netlink apply) took %s.",
				Ms(s.Commit.Median()), Ms(s.LastApply.Median()))
		}
	case "pass":
		if e := r.commitEngine(engine); e != nil {
			why := fmt.Sprintf("The pass reads what changed from %s, compiles and applies; a whole `store.Snapshot` there took %s.",
				engine, Ms(e.Snapshot.Median()))
			for _, a := range r.apply {
				if a.Scale == r.commit.Scale {
					why += fmt.Sprintf(" The compile and netlink apply alone, isolated, took %s at this scale (section 1): "+
						"the rest of the pass is the read.", Ms(a.Incremental.Median()))
				}
			}
			return why
		}
	case "datapath":
		return "Verdict-map dispatch is one lookup whatever the number of servers; compare the runs column of the datapath table " +
			"before reading a trend into one run."
	case "apiget", "apilist":
		why := "The bare handler writes a fixed byte string; the real one authenticates the token, reads " + engine +
			" in a transaction (for a list, a count for `X-Total-Count`, the page and the page's servers), asks the enforcer " +
			"for each group's state, and encodes the answer."
		switch engine {
		case "SQLite":
			why += " Statements are prepared once per connection and the readers stay open; what is left is SQLite's own " +
				"work (modernc's SQLite is C translated to Go: stepping a statement and converting each column of each row " +
				"are most of a list's CPU) and a read transaction per request."
		case "PostgreSQL":
			why += " Each of those reads is a round trip to a server that shares this machine's CPUs with the load generator " +
				"and the API."
		}
		return why
	case "put":
		if e := r.putEngine(engine); e != nil {
			return fmt.Sprintf("Each PUT commits %d rules and their audit record on %s, the answer reads the group's "+
				"counters from the kernel, and the enforcer applies each change in an nf_tables transaction that validates the table; "+
				"one PUT alone took %s to be answered and %s from sending it until the kernel held it.",
				r.put.Rules, engine, Ms(e.Answer.Median()), Ms(e.ToKernel.Median()))
		}
	case "fleet", "fleetaim":
		if f := r.fleet; f != nil {
			return fmt.Sprintf("Of that, the POST's answer (the commit included) took %s (p99); the binary agent, read from its "+
				"kernel, %s (p99).", Ms(f.Answer.Percentile(99)), Ms(f.Binary.Percentile(99)))
		}
	case "startnft":
		if b := r.binary; b != nil {
			return fmt.Sprintf("`/healthz` answers `200 OK` once the first apply is done, by design: here a full resync of %d kernel "+
				"rules; the preview start (%s) shows the rest of the program's start.", b.KernelRules, Ms(b.StartLoaded.Median()))
		}
	}
	return ""
}
