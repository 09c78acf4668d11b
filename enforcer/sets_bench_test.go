//go:build linux

package enforcer

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// Benchmarks of rules on IP sets: loading a set of 100,000 entries, one
// entry changed (the kernel's share quoted apart), the delay from an apply
// to its effect on packets, and connections through a rule on a
// 100,000-entry set beside a rule on a 1-entry set.

// kernelShare reports the median of the kernel's share of the applies
// (sendmsg to acknowledgement) and of the rest (compile, diff, encoding)
// as metrics of b.
func kernelShare(b *testing.B, kernel, total []time.Duration) {
	b.Helper()
	median := func(d []time.Duration) float64 {
		if len(d) == 0 {
			return 0
		}
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[len(s)/2]) / float64(time.Millisecond)
	}
	ours := make([]time.Duration, len(total))
	for i := range total {
		ours[i] = total[i] - kernel[i]
	}
	b.ReportMetric(median(kernel), "kernel-ms")
	b.ReportMetric(median(ours), "ours-ms")
}

func (n *NFTables) sendDuration() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastSend
}

// BenchmarkSetLoad100k measures compiling and loading an IP set of 100,000
// entries (IPv4 and IPv6, addresses and prefixes, a quarter each) into
// the kernel: a full resync of a table whose one rule matches it.
func BenchmarkSetLoad100k(b *testing.B) {
	be := benchBackend(b)
	snap := setSnapshot(largeSet(100_000), nil, true)
	ctx := context.Background()
	var kernel, total []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := be.Apply(ctx, nil, Compile(snap)); err != nil {
			b.Fatal(err)
		}
		total = append(total, time.Since(start))
		kernel = append(kernel, be.sendDuration())
	}
	kernelShare(b, kernel, total)
}

// BenchmarkSetEntryChange measures one entry of a 100,000-entry IP set
// changed and committed to the kernel, as the reconciler does it: compile
// (with the Compiler that recognises the unchanged sets), diff (a sorted
// merge of the changed set), encode, send. An address changes an element
// of a hash set; a prefix two of an interval set. kernel-ms is the
// kernel's share (sendmsg to acknowledgement), ours-ms the rest.
func BenchmarkSetEntryChange(b *testing.B) {
	for _, tc := range []struct {
		name     string
		old, new netip.Prefix
	}{
		{"address", netip.MustParsePrefix("10.0.0.2/32"), netip.MustParsePrefix("10.255.255.1/32")},
		{"prefix", netip.MustParsePrefix("11.0.0.32/28"), netip.MustParsePrefix("11.255.255.0/24")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			be := benchBackend(b)
			ctx := context.Background()
			entries := largeSet(100_000)
			if !slices.Contains(entries, tc.old) {
				b.Fatalf("%s not in the set", tc.old)
			}
			other := slices.Clone(entries)
			other[slices.Index(other, tc.old)] = tc.new
			slices.SortFunc(other, ComparePrefixes)
			versions := [2][]netip.Prefix{entries, other}
			var c Compiler
			snap := setSnapshot(entries, nil, true)
			prev := c.Compile(snap)
			if err := be.Apply(ctx, nil, prev); err != nil {
				b.Fatal(err)
			}
			var kernel, total []time.Duration
			for i := 0; b.Loop(); i++ {
				// A snapshot as SnapshotSince gives it: the set's new
				// slice, the rest shared.
				snap.IPSets = map[string][]netip.Prefix{ipsRich: versions[(i+1)%2]}
				start := time.Now()
				next := c.Compile(snap)
				if err := be.Apply(ctx, prev, next); err != nil {
					b.Fatal(err)
				}
				total = append(total, time.Since(start))
				kernel = append(kernel, be.sendDuration())
				prev = next
			}
			kernelShare(b, kernel, total)
		})
	}
}

// BenchmarkSetEntryEffect measures the delay from an apply that adds the
// client's address to a 100,000-entry IP set to the first connection it
// lets through (the apply included; the client tries again as soon as the
// apply returned, so no retransmission is waited for).
func BenchmarkSetEntryEffect(b *testing.B) {
	requireRoot(b)
	e := &env{topo: newTopo(b)}
	be, err := NewNFTables(WithNetNS(int(e.router.h)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	serveTCP(b, e.s1, portA)
	ctx := context.Background()
	without := largeSet(100_000)
	with := append(slices.Clone(without), netip.MustParsePrefix(e.client.v4+"/32"))
	slices.SortFunc(with, ComparePrefixes)
	var c Compiler
	snapOf := func(entries []netip.Prefix) store.Snapshot { return setSnapshot(entries, nil, true) }
	prev := c.Compile(snapOf(without))
	if err := be.Apply(ctx, nil, prev); err != nil {
		b.Fatal(err)
	}
	var delays []time.Duration
	for b.Loop() {
		start := time.Now()
		next := c.Compile(snapOf(with))
		if err := be.Apply(ctx, prev, next); err != nil {
			b.Fatal(err)
		}
		if err := tcpErr(e.client, e.s1.v4, portA); err != nil {
			b.Fatalf("no connection right after the apply: %v", err)
		}
		delays = append(delays, time.Since(start))
		b.StopTimer()
		prev = c.Compile(snapOf(without))
		if err := be.Apply(ctx, next, prev); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	slices.Sort(delays)
	b.ReportMetric(float64(delays[len(delays)/2])/float64(time.Millisecond), "effect-ms")
}

// BenchmarkSetConnRate measures TCP connections per second from the
// client through a rule on an IP set of 100,000 entries and through the
// same rule on a set of 1 entry, side by side: s1's group matches the
// large set, s2's the small one, and batches of connections alternate
// between them. In both the client's address is in an interval (the hash
// set of addresses is looked up and missed first), so the two differ only
// in the sets' sizes. It reports both rates and their ratio.
func BenchmarkSetConnRate(b *testing.B) {
	requireRoot(b)
	e := &env{topo: newTopo(b)}
	be, err := NewNFTables(WithNetNS(int(e.router.h)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	serveTCP(b, e.s1, portA)
	serveTCP(b, e.s2, portA)
	const small = "33333333-0000-4000-8000-0000000000a3"
	client := netip.MustParsePrefix("10.99.0.0/24")
	large := append(largeSet(100_000), client)
	slices.SortFunc(large, ComparePrefixes)
	groupOf := func(id string) store.Group { return group(id, true, store.Drop, store.Accept, false) }
	snap := snapshot(1, []store.Group{groupOf(gA), groupOf(gB)}, map[string][]store.Rule{
		gA: {setRule("r-large", store.Inbound, store.TCP, store.Accept, ipsRich, portA, 0)},
		gB: {setRule("r-small", store.Inbound, store.TCP, store.Accept, small, portA, 0)},
	}, server("s1", gA, "vs1"), server("s2", gB, "vs2"))
	snap.IPSets = map[string][]netip.Prefix{ipsRich: large, small: {client}}
	rs := Compile(snap)
	if err := be.Apply(context.Background(), nil, rs); err != nil {
		b.Fatal(err)
	}
	const batch = 200
	conns := func(to node) time.Duration {
		start := time.Now()
		for range batch {
			if err := tcpErr(e.client, to.v4, portA); err != nil {
				b.Fatalf("connection to %s: %v", to.name, err)
			}
		}
		return time.Since(start)
	}
	var rl, rsm []float64
	for i := 0; b.Loop(); i++ {
		// Alternating order, so that neither always goes first.
		var dl, ds time.Duration
		if i%2 == 0 {
			dl, ds = conns(e.s1), conns(e.s2)
		} else {
			ds, dl = conns(e.s2), conns(e.s1)
		}
		rl = append(rl, batch/dl.Seconds())
		rsm = append(rsm, batch/ds.Seconds())
	}
	sort.Float64s(rl)
	sort.Float64s(rsm)
	l, s := rl[len(rl)/2], rsm[len(rsm)/2]
	b.ReportMetric(l, "conn/s-100k")
	b.ReportMetric(s, "conn/s-1")
	b.ReportMetric(l/s, "ratio")
	// The large rule did count: the connections went through the set.
	g, _ := rs.Group(gA)
	c, err := be.GroupCounters(context.Background(), g)
	if err != nil {
		b.Fatal(err)
	}
	if c[gA]["r-large"].Packets == 0 {
		b.Fatal(fmt.Errorf("the rule on the large set counted nothing"))
	}
}
