//go:build linux

package enforcer

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/rampart-fw/rampart/store"
)

// waitFor polls cond until it holds or d passes, and returns how long it took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// startReconciler runs a Reconciler on e's backend until the test ends.
func startReconciler(t *testing.T, e *env, src Source) *Reconciler {
	t.Helper()
	r := NewReconciler(src, e.b, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-r.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("reconciler not ready")
	}
	return r
}

// TestKernelReconciler proves the reconcile loop against the kernel: a
// change is enforced and `available` within a second; drift (table deleted,
// chain flushed, element deleted) is repaired within 2 s; a foreign table
// survives everything; a batch the kernel refuses leaves the previous
// ruleset in force and the group in syncing_error, until the cause is gone.
func TestKernelReconciler(t *testing.T) {
	e := newEnv(t)
	nft := func(args ...string) string {
		return runCmd(t, append([]string{"ip", "netns", "exec", e.router.name, "nft"}, args...)...)
	}
	nft("add table inet foreign")
	nft("add chain inet foreign c { type filter hook forward priority 10; policy accept; }")
	nft("add rule inet foreign c counter comment \"not ours\"")

	closed := oneGroup(group(gA, true, store.Drop, store.Accept, false))
	src := newFakeSource(closed)
	r := startReconciler(t, e, src)
	if st, why := r.GroupState(gA, 1); st != store.Available {
		t.Fatalf("after start: state %s (%s), want available", st, why)
	}
	if mode, _ := r.Mode(); mode != ModeNFTables {
		t.Errorf("mode = %s, want nftables", mode)
	}
	expect(t, "start: closed", tcpErr(e.client, e.s1.v4, portA), false)
	// Left alone, the kernel is found in sync: no repair, no reapply.
	time.Sleep(2200 * time.Millisecond)
	if s := r.Stats(); s.DriftRepairs != 0 || s.Applies != 1 {
		t.Fatalf("idle stats = %+v, want one apply and no drift", s)
	}

	// A committed change reaches the kernel at once (Watch wake-up).
	open := oneGroup(group(gA, true, store.Drop, store.Accept, false),
		rule("web", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", portA, 0))
	gen := src.Set(open)
	took := waitFor(t, time.Second, "change available", func() bool {
		st, _ := r.GroupState(gA, gen)
		return st == store.Available
	})
	t.Logf("change available after %v", took)
	expect(t, "after change: open", tcpErr(e.client, e.s1.v4, portA), true)
	if got := r.Stats().FullResyncs; got != 1 {
		t.Errorf("full resyncs = %d, want 1 (the change was incremental)", got)
	}
	if c := r.Counters(context.Background(), gA); c["web"].Packets == 0 {
		t.Errorf("Counters(A) = %+v, want rule web counted", c)
	}
	if txt := r.GroupText(gA); !strings.Contains(txt, `tcp dport 8080 counter name "`+counterName(gA, "web")+`" accept comment "web"`) {
		t.Errorf("GroupText:\n%s", txt)
	}

	// Drift: each of these is undone within 2 s.
	inChain, _ := ChainNames(gA)
	for i, vandal := range []string{
		"delete table inet rampart",
		"flush chain inet rampart " + inChain,
		`delete element inet rampart to_server { "vs1" }`,
		"flush ruleset",
	} {
		before := r.Stats().DriftRepairs
		nft(vandal)
		waitFor(t, 2*time.Second, "repair after "+vandal, func() bool {
			return r.Stats().DriftRepairs > before
		})
		expect(t, "repaired after "+vandal+": open", tcpErr(e.client, e.s1.v4, portA), true)
		expect(t, "repaired after "+vandal+": closed port", tcpErr(e.client, e.s1.v4, portB), false)
		if i == 3 {
			nft("add table inet foreign") // flush ruleset emptied it; recreate for the next checks
		}
	}
	if !strings.Contains(nft("list tables"), "inet foreign") {
		t.Error("foreign table removed")
	}
	if i := r.Stats(); i.DriftRepairs < 4 || i.Applies < 5 {
		t.Errorf("stats = %+v", i)
	}

	// A batch the kernel refuses: one more message adds a rule to a chain
	// that does not exist, so the whole transaction is rejected.
	e.b.setTestHook(func(c *nftables.Conn, tb *nftables.Table) {
		c.AddRule(&nftables.Rule{Table: tb, Chain: &nftables.Chain{Name: "no_such_chain", Table: tb},
			Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})
	})
	wider := oneGroup(group(gA, true, store.Drop, store.Accept, false),
		rule("web", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", portA, portB))
	gen = src.Set(wider)
	var reason string
	waitFor(t, time.Second, "syncing_error", func() bool {
		var st store.SyncState
		st, reason = r.GroupState(gA, gen)
		return st == store.SyncingError
	})
	if !strings.Contains(reason, "no such file") {
		t.Errorf("reason = %q, want the kernel's ENOENT", reason)
	}
	t.Logf("syncing_error: %s", reason)
	expect(t, "refused: old rule still open", tcpErr(e.client, e.s1.v4, portA), true)
	expect(t, "refused: new port not open", tcpErr(e.client, e.s1.v4, portB), false)
	if r.Stats().ApplyErrors == 0 || r.Stats().LastError == "" {
		t.Errorf("stats = %+v, want an apply error", r.Stats())
	}
	// The cause goes away: the periodic retry applies it.
	e.b.setTestHook(nil)
	waitFor(t, 2*time.Second, "recovery", func() bool {
		st, _ := r.GroupState(gA, gen)
		return st == store.Available
	})
	expect(t, "recovered: new port open", tcpErr(e.client, e.s1.v4, portB), true)
	if !strings.Contains(nft("list tables"), "inet foreign") {
		t.Error("foreign table removed")
	}
}

// TestKernelRemove proves that Remove deletes our table and only ours, and
// succeeds when there is nothing to remove.
func TestKernelRemove(t *testing.T) {
	e := newEnv(t)
	runCmd(t, "ip", "netns", "exec", e.router.name, "nft", "add table inet foreign")
	e.apply(t, oneGroup(group(gA, true, store.Drop, store.Accept, false)))
	expect(t, "enforced", tcpErr(e.client, e.s1.v4, portA), false)
	for i := 0; i < 2; i++ {
		if err := Remove(context.Background(), WithNetNS(int(e.router.h))); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if tableExists(e.router.name) {
		t.Error("table still there")
	}
	if !strings.Contains(runCmd(t, "ip", "netns", "exec", e.router.name, "nft", "list", "tables"), "inet foreign") {
		t.Error("foreign table removed")
	}
	expect(t, "removed: open", tcpErr(e.client, e.s1.v4, portA), true)
}

// TestFailedRepairIsNotAvailable (hardening finding 13): when the table is
// lost and the full resync that should restore it fails, no group may go on
// reporting `available`: each is syncing_error with the reason, until a
// repair succeeds.
func TestFailedRepairIsNotAvailable(t *testing.T) {
	e := newEnv(t)
	src := newFakeSource(oneGroup(group(gA, true, store.Drop, store.Accept, false),
		rule("web", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", portA, 0)))
	r := startReconciler(t, e, src)
	for _, g := range []string{gA, gB} {
		if st, why := r.GroupState(g, 1); st != store.Available {
			t.Fatalf("group %s after start: %s (%s)", g, st, why)
		}
	}
	e.b.setTestHook(func(c *nftables.Conn, tb *nftables.Table) {
		c.AddRule(&nftables.Rule{Table: tb, Chain: &nftables.Chain{Name: "no_such_chain", Table: tb},
			Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})
	})
	runCmd(t, "ip", "netns", "exec", e.router.name, "nft", "delete table inet rampart")
	for _, g := range []string{gA, gB} {
		var why string
		waitFor(t, 5*time.Second, "group "+g+" syncing_error after a failed repair", func() bool {
			var st store.SyncState
			st, why = r.GroupState(g, 1)
			return st == store.SyncingError
		})
		if !strings.Contains(why, "apply") {
			t.Errorf("group %s reason = %q, want the apply error", g, why)
		}
	}
	// Nothing is enforced meanwhile, and the state says so.
	expect(t, "table lost: closed port reachable", tcpErr(e.client, e.s1.v4, portB), true)
	e.b.setTestHook(nil)
	for _, g := range []string{gA, gB} {
		waitFor(t, 5*time.Second, "group "+g+" available after repair", func() bool {
			st, _ := r.GroupState(g, 1)
			return st == store.Available
		})
	}
	expect(t, "repaired: closed port closed", tcpErr(e.client, e.s1.v4, portB), false)
}

// TestUnreadableRowKeepsRuleset (hardening finding 10): a rule whose stored
// row cannot be read must never widen what is enforced. The group turns
// syncing_error naming the rule, and the kernel keeps the group's previous
// ruleset (and the interfaces that jump to it), proven with packets.
func TestUnreadableRowKeepsRuleset(t *testing.T) {
	e := newEnv(t)
	src := newFakeSource(oneGroup(group(gA, true, store.Drop, store.Accept, false),
		rule("web", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", portA, 0)))
	r := startReconciler(t, e, src)
	expect(t, "before: web open", tcpErr(e.client, e.s1.v4, portA), true)
	expect(t, "before: other port closed", tcpErr(e.client, e.s1.v4, portB), false)

	// What the store hands over for a row whose ip_range it cannot parse:
	// the fields it could read (a zero range) and the mark.
	bad := oneGroup(group(gA, true, store.Drop, store.Accept, false),
		rule("web", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", portA, 0),
		store.Rule{ID: "broken", Direction: store.Inbound, Protocol: store.ANY, Action: store.Accept})
	bad.Unreadable = map[string][]string{gA: {`rule broken: ip_range: "10.0.0.0/33" is not a CIDR range or an IP address`}}
	gen := src.Set(bad)
	var why string
	waitFor(t, 2*time.Second, "syncing_error", func() bool {
		var st store.SyncState
		st, why = r.GroupState(gA, gen)
		return st == store.SyncingError
	})
	if !strings.Contains(why, "rule broken") {
		t.Errorf("reason = %q, want it to name the rule", why)
	}
	expect(t, "unreadable: web still open", tcpErr(e.client, e.s1.v4, portA), true)
	expect(t, "unreadable: other port still closed", tcpErr(e.client, e.s1.v4, portB), false)
	if st, _ := r.GroupState(gB, gen); st != store.Available {
		t.Errorf("other group = %s, want available", st)
	}
}
