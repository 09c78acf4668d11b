//go:build linux

package enforcer

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// sendUDP sends n datagrams of size bytes of payload from n to host:port,
// without waiting for any answer.
func sendUDP(t *testing.T, from node, host string, port, n, size int) {
	t.Helper()
	c, err := inNS(from.h, func() (net.Conn, error) {
		return net.Dial("udp", net.JoinHostPort(host, fmt.Sprint(port)))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, size)
	for i := 0; i < n; i++ {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKernelCountersLast proves that the counters of rules and default
// policies are the table's and not the rules': N packets matching a rule
// count exactly N (packets and bytes) across a reorder, an edit of another
// rule, a full resync by a new backend on the same namespace (what a
// restart does), and a drift repair; a rule's counter goes with the rule;
// and ResetCounters zeroes a group's counters in one request.
func TestKernelCountersLast(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ping := rule("r-ping", store.Inbound, store.ICMP, store.Accept, "10.99.0.0/24", 0, 0)
	other := rule("r-other", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", 9999, 0)
	// Stateless, so that every echo request meets r-ping and nothing else
	// (no established exception), and every datagram the default drop.
	a := group(gA, false, store.Drop, store.Accept, false)
	var c Compiler
	apply := func(b *NFTables, prev *Ruleset, rules ...store.Rule) *Ruleset {
		t.Helper()
		rs := c.Compile(oneGroup(a, rules...))
		if err := b.Apply(ctx, prev, rs); err != nil {
			t.Fatalf("apply: %v", err)
		}
		return rs
	}
	var pings, dgrams int
	traffic := func(what string, np, nd int) {
		t.Helper()
		for i := 0; i < np; i++ {
			expect(t, what+": ping", pingErr(e.client, e.s1.v4), true)
		}
		sendUDP(t, e.client, e.s1.v4, portUDP, nd, 100)
		pings, dgrams = pings+np, dgrams+nd
	}
	// An echo request of pingErr: IPv4 20 + ICMP 8 + "rampart"; a
	// datagram: IPv4 20 + UDP 8 + 100.
	const pingBytes, dgramBytes = 35, 128
	check := func(what string, b *NFTables, rs *Ruleset) {
		t.Helper()
		g, _ := rs.Group(gA)
		got, err := b.GroupCounters(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		want := Counter{Packets: uint64(pings), Bytes: uint64(pings * pingBytes)}
		if c := got[gA]["r-ping"]; c != want {
			t.Errorf("%s: r-ping = %+v, want %+v", what, c, want)
		}
		want = Counter{Packets: uint64(dgrams), Bytes: uint64(dgrams * dgramBytes)}
		if c := got[gA][TagDefaultIn]; c != want {
			t.Errorf("%s: default_in = %+v, want %+v", what, c, want)
		}
	}

	rs := apply(e.b, nil, other, ping)
	traffic("first", 3, 2)
	check("first", e.b, rs)

	// A reorder rewrites the chain: its rules are new, their counters not.
	rs = apply(e.b, rs, ping, other)
	traffic("reordered", 2, 1)
	check("after a reorder", e.b, rs)

	// An edit of another rule.
	edited := other
	edited.DestPortFrom = 9998
	rs = apply(e.b, rs, ping, edited)
	traffic("edited", 1, 3)
	check("after an edit of another rule", e.b, rs)

	// A restart: a new backend, whose first apply is a full resync.
	b2, err := NewNFTables(WithNetNS(int(e.router.h)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b2.Close() })
	rs = apply(b2, nil, ping, edited)
	traffic("restarted", 2, 2)
	check("after a full resync by a new backend", b2, rs)

	// Drift repaired by a full resync: someone flushed the chain.
	inChain, _ := ChainNames(gA)
	runCmd(t, "ip", "netns", "exec", e.router.name, "nft", "flush", "chain", "inet", TableName, inChain)
	if err := b2.Verify(ctx, rs); err == nil {
		t.Fatal("flushed chain not found by Verify")
	}
	rs = apply(b2, nil, ping, edited)
	traffic("repaired", 1, 1)
	check("after a drift repair", b2, rs)

	// The counter of a rule that is gone is gone; the others stay.
	list := func() string {
		return runCmd(t, "ip", "netns", "exec", e.router.name, "nft", "list", "counters", "table", "inet", TableName)
	}
	if !strings.Contains(list(), counterName(gA, "r-other")) {
		t.Fatal("counter of r-other missing before its deletion")
	}
	rs = apply(b2, rs, ping)
	if l := list(); strings.Contains(l, counterName(gA, "r-other")) || !strings.Contains(l, counterName(gA, "r-ping")) {
		t.Errorf("after deleting r-other, counters:\n%s", l)
	}
	check("after deleting another rule", b2, rs)

	// Reset: what the counters held is returned, and they start again.
	g, _ := rs.Group(gA)
	held, err := b2.ResetCounters(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if held[gA]["r-ping"].Packets != uint64(pings) || held[gA][TagDefaultIn].Packets != uint64(dgrams) {
		t.Errorf("reset returned %+v, want %d pings and %d datagrams", held[gA], pings, dgrams)
	}
	pings, dgrams = 0, 0
	check("after a reset", b2, rs)
	traffic("after reset", 1, 1)
	check("counting again after a reset", b2, rs)

	// Counters the kernel does not hold are left out, the others read.
	ghost := GroupChains{GroupID: gC, Objects: []Object{{Kind: ObjCounter, Name: counterName(gC, "nope"), Tag: "nope"}}}
	mixed, err := b2.GroupCounters(ctx, ghost, g)
	if err != nil {
		t.Fatal(err)
	}
	if len(mixed[gC]) != 0 || mixed[gA]["r-ping"].Packets != 1 {
		t.Errorf("counters with one missing = %+v", mixed)
	}

	// The chain-based read gives the same counters.
	byChain, err := b2.Counters(ctx, g.In.Name)
	if err != nil {
		t.Fatal(err)
	}
	if byChain["r-ping"].Packets != 1 || byChain[TagDefaultIn].Packets != 1 {
		t.Errorf("Counters(%s) = %+v", g.In.Name, byChain)
	}
}

// TestKernelReconcilerCountersRestart runs the reconcile loop, stops it
// and starts another on a new backend, as a restart of serve does: the
// first apply of the new one is a full resync, and the counters go on.
// Through the Reconciler: Counters, AllCounters, ResetCounters, and
// SetLogConfig, whose new limit rewrites the group's log chains while
// its counters go on.
func TestKernelReconcilerCountersRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := group(gA, false, store.Drop, store.Accept, false)
	a.LogDefaultDrops = true
	ping := rule("r-ping", store.Inbound, store.ICMP, store.Accept, "10.99.0.0/24", 0, 0)
	ping.Log = true
	src := newFakeSource(oneGroup(a, ping))
	pings := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			expect(t, "ping", pingErr(e.client, e.s1.v4), true)
		}
	}
	r1 := NewReconciler(src, e.b, nil)
	ctx1, stop1 := context.WithCancel(ctx)
	done1 := make(chan error, 1)
	go func() { done1 <- r1.Run(ctx1) }()
	<-r1.Ready()
	pings(3)
	if c := r1.Counters(ctx, gA); c["r-ping"].Packets != 3 {
		t.Fatalf("before the restart: %+v", c)
	}
	stop1()
	if err := <-done1; err != nil {
		t.Fatal(err)
	}

	b2, err := NewNFTables(WithNetNS(int(e.router.h)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b2.Close() })
	r2 := NewReconciler(src, b2, nil)
	r2.SetLogConfig(LogConfig{Limit: LogLimit{Rate: 5, Burst: 5}})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r2.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-r2.Ready()
	if s := r2.Stats(); s.FullResyncs != 1 || s.LastError != "" {
		t.Fatalf("restart stats %+v", s)
	}
	if !strings.Contains(r2.RulesetText(), limitName(gA, LogLimit{Rate: 5, Burst: 5})) {
		t.Error("the restarted reconciler does not use its log limit")
	}
	pings(2)
	if c := r2.Counters(ctx, gA); c["r-ping"].Packets != 5 {
		t.Errorf("after the restart: r-ping = %+v, want 5 packets", c["r-ping"])
	}
	// A new limit at run time: the log chains are rewritten, the counters
	// go on.
	r2.SetLogConfig(LogConfig{Limit: LogLimit{Rate: 9, Burst: 9}})
	waitFor(t, 3*time.Second, "new limit applied", func() bool {
		return strings.Contains(listTable(t, e.router.name), limitName(gA, LogLimit{Rate: 9, Burst: 9}))
	})
	if l := listTable(t, e.router.name); strings.Contains(l, limitName(gA, LogLimit{Rate: 5, Burst: 5})) {
		t.Errorf("old limit object left:\n%s", l)
	}
	pings(1)
	all, err := r2.AllCounters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if all[gA]["r-ping"].Packets != 6 || len(all) != 2 {
		t.Errorf("AllCounters = %+v", all)
	}
	held, err := r2.ResetCounters(ctx, gA)
	if err != nil || held["r-ping"].Packets != 6 {
		t.Fatalf("ResetCounters = %+v, %v", held, err)
	}
	if c := r2.Counters(ctx, gA); c["r-ping"].Packets != 0 {
		t.Errorf("after a reset: %+v", c["r-ping"])
	}
}
