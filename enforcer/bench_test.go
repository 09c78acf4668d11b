//go:build linux

package enforcer

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/store"
)

// benchSnapshot: 1,000 servers, 200 groups, 50 rules per group (25 in, 25
// out, IPv4 and IPv6, TCP/UDP/ICMP/ANY), every group stateful with SMTP
// blocked: 10,000 rules plus the fixed ones.
func benchSnapshot(gen int64) store.Snapshot {
	var groups []store.Group
	rules := map[string][]store.Rule{}
	for g := 0; g < 200; g++ {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", g, g)
		groups = append(groups, group(id, true, store.Drop, store.Accept, true))
		for i := 0; i < 50; i++ {
			dir := store.Inbound
			if i%2 == 1 {
				dir = store.Outbound
			}
			cidr := fmt.Sprintf("10.%d.%d.0/24", g%250, i)
			if i%5 == 4 {
				cidr = fmt.Sprintf("2001:db8:%x:%x::/64", g, i)
			}
			var r store.Rule
			switch i % 4 {
			case 0:
				r = rule("", dir, store.TCP, store.Accept, cidr, uint16(1000+i), 0)
			case 1:
				r = rule("", dir, store.UDP, store.Drop, cidr, uint16(2000+i), uint16(2100+i))
			case 2:
				r = rule("", dir, store.ICMP, store.Accept, cidr, 0, 0)
			default:
				r = rule("", dir, store.ANY, store.Drop, cidr, 0, 0)
			}
			r.ID = fmt.Sprintf("%s-r%02d", id[:8], i)
			rules[id] = append(rules[id], r)
		}
	}
	var servers []store.Server
	for s := 0; s < 1000; s++ {
		servers = append(servers, server(fmt.Sprintf("srv-%04d", s), groups[s%200].ID, fmt.Sprintf("vm%d", s)))
	}
	return snapshot(gen, groups, rules, servers...)
}

func benchBackend(b testing.TB) *NFTables {
	requireRoot(b)
	_, h := newNS(b, "bn")
	be, err := NewNFTables(WithNetNS(int(h)))
	if err != nil {
		b.Fatal(err)
	}
	// Registered after newNS's cleanup, so it runs first: the socket holds
	// the namespace alive.
	b.Cleanup(func() { be.Close() })
	return be
}

// BenchmarkApplyOneGroupChange measures compile + incremental apply when
// one rule of one group changes: one chain rewritten in one batch. It
// compiles as the reconciler does, with a Compiler that reuses the chains
// of the groups that did not change.
func BenchmarkApplyOneGroupChange(b *testing.B) {
	be := benchBackend(b)
	snap := benchSnapshot(1)
	var c Compiler
	prev := c.Compile(snap)
	ctx := context.Background()
	if err := be.Apply(ctx, nil, prev); err != nil {
		b.Fatal(err)
	}
	g := snap.Groups[17].ID
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// Copy the group's rules: the snapshot is shared with prev's build.
		rs := append([]store.Rule(nil), snap.Rules[g]...)
		rs[0].DestPortFrom = uint16(3000 + i%1000) // rule 0 is TCP: ports apply
		snap.Rules[g] = rs
		next := c.Compile(snap)
		if len(next.Errors) > 0 {
			b.Fatalf("compile: %v", next.Errors)
		}
		if err := be.Apply(ctx, prev, next); err != nil {
			b.Fatal(err)
		}
		prev = next
	}
}

// BenchmarkFullResync measures compile + replacing the whole table in one
// batch, as on start or after drift.
func BenchmarkFullResync(b *testing.B) {
	be := benchBackend(b)
	snap := benchSnapshot(1)
	ctx := context.Background()
	for b.Loop() {
		if err := be.Apply(ctx, nil, Compile(snap)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile measures compiling the whole snapshot from scratch, as
// on start (no root needed).
func BenchmarkCompile(b *testing.B) {
	snap := benchSnapshot(1)
	for b.Loop() {
		if rs := Compile(snap); len(rs.Errors) > 0 {
			b.Fatal(rs.Errors)
		}
	}
}

// BenchmarkCompileOneGroupChange measures what the reconciler's Compiler
// does when one rule of one group changed: compare every group, recompile
// one (no root needed).
func BenchmarkCompileOneGroupChange(b *testing.B) {
	snap := benchSnapshot(1)
	var c Compiler
	c.Compile(snap)
	g := snap.Groups[17].ID
	for i := 0; b.Loop(); i++ {
		rs := append([]store.Rule(nil), snap.Rules[g]...)
		rs[0].DestPortFrom = uint16(3000 + i%1000)
		snap.Rules[g] = rs
		c.Compile(snap)
	}
}

// BenchmarkEncodeFullBatch measures building the netlink batch of a full
// resync (11,000 messages) without sending it (no root needed).
func BenchmarkEncodeFullBatch(b *testing.B) {
	rs := Compile(benchSnapshot(1))
	var size int
	for b.Loop() {
		bt, err := newBatch(table())
		if err != nil {
			b.Fatal(err)
		}
		if err := fullBatch(bt, rs, tableState{}); err != nil {
			b.Fatal(err)
		}
		buf, err := bt.finish()
		if err != nil {
			b.Fatal(err)
		}
		size = len(buf)
	}
	b.ReportMetric(float64(size), "bytes/batch")
}

// BenchmarkVerify measures the periodic drift check when nothing changed
// (one generation round trip) and after a change (one dump of the table).
func BenchmarkVerify(b *testing.B) {
	be := benchBackend(b)
	rs := Compile(benchSnapshot(1))
	ctx := context.Background()
	if err := be.Apply(ctx, nil, rs); err != nil {
		b.Fatal(err)
	}
	if err := be.Verify(ctx, rs); err != nil { // known from the apply: no dump
		b.Fatal(err)
	}
	b.Run("unchanged", func(b *testing.B) {
		for b.Loop() {
			if err := be.Verify(ctx, rs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dump", func(b *testing.B) {
		for b.Loop() {
			be.mu.Lock()
			be.verifiedFor = nil
			be.mu.Unlock()
			if err := be.Verify(ctx, rs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestKernelLargeRuleset applies the benchmark's ruleset (10,000 rules,
// 1,000 map elements) in one batch and reads it back: it guards the socket
// buffer sizing and the chunking of map elements.
func TestKernelLargeRuleset(t *testing.T) {
	requireRoot(t)
	ns, h := newNS(t, "lg")
	be, err := NewNFTables(WithNetNS(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	rs := Compile(benchSnapshot(1))
	if err := be.Apply(context.Background(), nil, rs); err != nil {
		t.Fatal(err)
	}
	if err := be.Verify(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	got := strings.Count(runCmd(t, "ip", "netns", "exec", ns, "nft", "list", "map", "inet", TableName, mapToServer), "jump")
	if got != 1000 {
		t.Errorf("to_server holds %d elements, want 1000", got)
	}
}

// BenchmarkGroupCounters measures reading counters from the table of the
// benchmark's snapshot (1,000 servers, 200 groups, 50 rules each: 11,600
// counter objects): one group's (58 counters, one request each, in one
// sendmsg), every group's (one dump of the table's counters), one group's
// through its chains (Counters: two rule dumps, then the objects), and a
// reset of one group.
func BenchmarkGroupCounters(b *testing.B) {
	be := benchBackend(b)
	rs := Compile(benchSnapshot(1))
	ctx := context.Background()
	if err := be.Apply(ctx, nil, rs); err != nil {
		b.Fatal(err)
	}
	g := rs.Groups[17]
	b.Run("one_group", func(b *testing.B) {
		for b.Loop() {
			c, err := be.GroupCounters(ctx, g)
			if err != nil {
				b.Fatal(err)
			}
			if len(c[g.GroupID]) != len(g.Objects) {
				b.Fatalf("%d counters, want %d", len(c[g.GroupID]), len(g.Objects))
			}
		}
	})
	b.Run("all_groups", func(b *testing.B) {
		var want int
		for _, g := range rs.Groups {
			want += len(g.Objects)
		}
		for b.Loop() {
			c, err := be.GroupCounters(ctx, rs.Groups...)
			if err != nil {
				b.Fatal(err)
			}
			var got int
			for _, m := range c {
				got += len(m)
			}
			if got != want {
				b.Fatalf("%d counters, want %d", got, want)
			}
		}
		b.ReportMetric(float64(want), "counters")
	})
	b.Run("one_group_by_chains", func(b *testing.B) {
		for b.Loop() {
			c, err := be.Counters(ctx, g.In.Name, g.Out.Name)
			if err != nil {
				b.Fatal(err)
			}
			if len(c) != len(g.Objects) {
				b.Fatalf("%d counters, want %d", len(c), len(g.Objects))
			}
		}
	})
	b.Run("reset_one_group", func(b *testing.B) {
		for b.Loop() {
			if _, err := be.ResetCounters(ctx, g); err != nil {
				b.Fatal(err)
			}
		}
	})
}
