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
// target goes.
func (r *report) why(key string) string {
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
	case "fullnft", "fullipt":
		return "Most of a full load is the kernel's own work on the table, which every loader pays; see the runs line under the table."
	case "datapath":
		return "Verdict-map dispatch is one lookup whatever the number of servers; compare the runs column of the datapath table " +
			"before reading a trend into one run."
	case "apiget", "apilist":
		return "The bare handler writes a fixed byte string; the real one reads SQLite in a transaction (for a list, a count for " +
			"`X-Total-Count`, the page and the page's servers), asks the enforcer for each group's state, and encodes the answer."
	case "put":
		if u := r.put; u != nil {
			return fmt.Sprintf("Each PUT commits %d rules and their audit record with `synchronous(FULL)`, the answer reads the group's "+
				"counters from the kernel, and the enforcer applies each change in an nf_tables transaction that validates the table; "+
				"one PUT alone took %s from sending it until the kernel held it.", u.Rules, Ms(u.ToKernel.Median()))
		}
	case "startnft":
		if b := r.binary; b != nil {
			return fmt.Sprintf("`/healthz` answers `200 OK` once the first apply is done, by design: here a full resync of %d kernel "+
				"rules; the preview start (%s) shows the rest of the program's start.", b.KernelRules, Ms(b.StartLoaded.Median()))
		}
	}
	return ""
}
