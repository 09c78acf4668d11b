package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// writeReport appends the run's section to path, with a header first when
// the file is new: every figure is of this run, and the section is only
// written when every check passed.
func (h *harness) writeReport(path string, l load, f *failover, ck *checks) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	if _, err := os.Stat(path); os.IsNotExist(err) {
		p("# Soak\n\n")
		p("Written by `make soak` (`cmd/rampart-soak`): API clients against real `rampart serve` processes for a while, with a\n")
		p("SIGKILL half-way in some runs, then every check below. A section is written only when every check of its run passed;\n")
		p("every figure in it was measured in that run. Each client owns a group and a server and keeps a model of what the\n")
		p("database must hold (its rules in order, its server's group); it reads, inserts rules at random positions, moves and\n")
		p("deletes them, replaces them all, and moves its server between its group and a shared one. A request cut by a kill\n")
		p("has an unknown outcome: the client reads the state back once a console answers and checks that it is the state before\n")
		p("or the one the request asked for.\n\n")
		p("| machine | |\n|---|---|\n| CPUs | %d |\n| kernel | %s |\n| Go | %s |\n\n", runtime.NumCPU(), strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")), runtime.Version())
	}
	p("## %s\n\n", h.title())
	p("`%s` on %s, %d clients for %s.", strings.Join(append([]string{"rampart-soak"}, os.Args[1:]...), " "), time.Now().UTC().Format("2006-01-02 15:04 MST"),
		h.cfg.clients, h.cfg.duration)
	if h.pg != nil {
		v, _ := h.pg.Version(context.Background())
		p(" The database: PostgreSQL %s, a cluster of this run on this machine (fsync and synchronous_commit on), over a unix socket.", v)
	} else {
		p(" The database: a SQLite file.")
	}
	p("\n\n")
	p("| requests | per second | p50 | p99 | 5xx | refused (4xx) | cut by the kill |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	p("| %d | %.0f | %s | %s | %d | %d | %d |\n\n", l.Requests, l.rate(), ms(l.P50), ms(l.P99), l.ServerErrors, l.Refused, l.Cut)
	if len(h.consoles) > 1 {
		p("Requests (setup and checks included) by console:")
		for _, c := range h.consoles {
			p(" %s %d;", c.name, c.requests.Load())
		}
		p(" each client talks to its own console, and to the other while its own is down, as a load balancer would.\n\n")
	}
	p("Checks, all passed:\n\n")
	p("- **Every acknowledged write is in the database**: the %d clients' rules (in order) and servers' groups read back equal to\n", ck.clients)
	p("  their models; %d cut requests were read back as either not applied or applied whole.\n", ck.resolved)
	p("- **Positions and generations have no gap**: every group's rules at positions 1..N; generations %d to %d each recorded in the\n", ck.startGen+1, ck.endGen)
	p("  audit log with its change (%d changes), and the counter at the last.\n", ck.changes)
	if len(ck.kernels) > 0 {
		p("- **Each host's kernel holds its compiled view** (%d groups available", ck.groups)
		if len(h.consoles) > 1 {
			p(" at every console")
		}
		p("): %s.\n", strings.Join(ck.kernels, "; "))
	} else {
		p("- **The enforcer holds the compiled snapshot**: %d groups available, each group's text equal to a compile of the database.\n", ck.groups)
	}
	if f != nil {
		p("- **The agent moves to the other console** (`rampart agent --console A,B` in a namespace of its own, linked to both): at\n")
		p("  %s into the load, console %s, which the agent followed, was killed with SIGKILL. The agent's connection to console %s\n", ms(f.At), f.Killed, f.Other)
		p("  (read from the sockets of its namespace) came %s after the kill. A rule created through console %s then reached the\n", ms(f.Moved), f.Other)
		p("  agent's kernel (read over netlink) %s after its POST; console %s read the group available, from the agent's report of it,\n", ms(f.Change), f.Other)
		p("  %s after the POST; and the database held the agent's report of generation %d, written by console %s (the only console\n", ms(f.Available), f.ChangeGen, f.Other)
		p("  up), %s after the kill. The agent's log: following console %s. Console %s was started again %s after the kill.\n",
			ms(f.Stored), strings.Join(h.agent.followed(h), ", then "), f.Killed, ms(f.Restarted))
	}
	p("\n")
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := fh.WriteString(b.String()); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

func (h *harness) title() string {
	switch {
	case h.agent != nil:
		return "Two consoles on one PostgreSQL, one killed with SIGKILL, an agent moving to the other"
	case h.cfg.crash && h.cfg.netns:
		return "One console enforcing in a namespace, killed with SIGKILL and restarted"
	case h.cfg.crash:
		return "One console, killed with SIGKILL and restarted"
	case h.cfg.netns:
		return "One console enforcing in a namespace"
	}
	return "One console"
}

func ms(d time.Duration) string {
	x := float64(d) / float64(time.Millisecond)
	switch {
	case x < 10:
		return fmt.Sprintf("%.2f ms", x)
	case x < 100:
		return fmt.Sprintf("%.1f ms", x)
	}
	return fmt.Sprintf("%.0f ms", x)
}

func readFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "?"
	}
	return string(b)
}
