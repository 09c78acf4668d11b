//go:build linux

package packetlog

import (
	"fmt"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/explain"
	"github.com/rampart-fw/rampart/store"
)

// logged sums the packets of the counters of the tags that log.
func logged(c map[string]enforcer.Counter, tags []string) uint64 {
	var n uint64
	for _, t := range tags {
		n += c[t].Packets
	}
	return n
}

// accounted waits until every packet the logging rules counted is an
// entry received, one the limit refused or one the kernel dropped for
// lack of buffer, and returns the figures.
func accounted(t *testing.T, n *testNet, r *Reader, tags []string) (counted uint64, st Stats, limited uint64) {
	t.Helper()
	waitFor(t, "every logged packet accounted for", func() bool {
		c := n.counters(t)
		st, limited = r.Stats(), c[enforcer.TagLogLimited].Packets
		counted = logged(c, tags)
		return counted == st.Received+limited+st.BufferDrops
	})
	return counted, st, limited
}

// TestKernelLogNamesTheRule sends real packets, IPv4 and IPv6, TCP, UDP
// and ICMP, through a group whose rules log, and checks that each gives
// an entry naming the group, the rule (with its position), the default
// policy or the SMTP row that decided, with the packet's addresses, ports
// and verdict, both ways; that a rule that does not log gives none; and
// that every logged packet is accounted for.
func TestKernelLogNamesTheRule(t *testing.T) {
	n := newNet(t)
	g := store.Group{Stateful: true, InboundDefaultPolicy: store.Drop, OutboundDefaultPolicy: store.Accept, LogDefaultDrops: true}
	rules := []store.Rule{
		rule("r-tcp", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", portTCP, true),
		rule("r-tcp6", store.Inbound, store.TCP, store.Accept, "::/0", portTCP, true),
		rule("r-udp", store.Inbound, store.UDP, store.Accept, "0.0.0.0/0", portUDP, true),
		rule("r-udp6", store.Inbound, store.UDP, store.Accept, "::/0", portUDP, true),
		rule("r-icmp", store.Inbound, store.ICMP, store.Accept, "10.98.0.0/24", 0, true),
		rule("r-icmp6", store.Inbound, store.ICMP, store.Accept, "fd98::/16", 0, true),
		rule("r-out", store.Outbound, store.UDP, store.Drop, "0.0.0.0/0", portUDP, true),
		rule("r-quiet", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", 9000, false),
	}
	snap := n.snapshot(g, rules...)
	r, col := n.startReader(t, Config{Index: NewIndex(snap)}, true)
	n.apply(t, snap, enforcer.LogConfig{})

	smtp := store.SMTPRules(groupID)
	c, s := n.client, n.server
	ruleRef := func(i int) explain.RuleRef {
		return explain.RuleRef{Kind: explain.KindRule, RuleID: rules[i].ID, Position: i + 1}
	}
	def := explain.RuleRef{Kind: explain.KindDefaultPolicy}
	tests := []struct {
		name      string
		send      func() error
		pass      bool
		dir       store.Direction
		proto     string
		src, dst  netip.Addr
		dport     uint16
		verdict   store.Policy
		decidedBy explain.RuleRef
	}{
		{"tcp v4 accepted", func() error { return tcpErr(c, s.v4, portTCP) }, true, store.Inbound, "TCP", c.v4, s.v4, portTCP, store.Accept, ruleRef(0)},
		{"tcp v6 accepted", func() error { return tcpErr(c, s.v6, portTCP) }, true, store.Inbound, "TCP", c.v6, s.v6, portTCP, store.Accept, ruleRef(1)},
		{"udp v4 accepted", func() error { return udpErr(c, s.v4, portUDP) }, true, store.Inbound, "UDP", c.v4, s.v4, portUDP, store.Accept, ruleRef(2)},
		{"udp v6 accepted", func() error { return udpErr(c, s.v6, portUDP) }, true, store.Inbound, "UDP", c.v6, s.v6, portUDP, store.Accept, ruleRef(3)},
		{"icmp v4 accepted", func() error { return pingErr(c, s.v4) }, true, store.Inbound, "ICMP", c.v4, s.v4, 0, store.Accept, ruleRef(4)},
		{"icmp v6 accepted", func() error { return pingErr(c, s.v6) }, true, store.Inbound, "ICMP", c.v6, s.v6, 0, store.Accept, ruleRef(5)},
		{"tcp v4 default drop", func() error { return tcpErr(c, s.v4, portTCP+1) }, false, store.Inbound, "TCP", c.v4, s.v4, portTCP + 1, store.Drop, def},
		{"tcp v6 default drop", func() error { return tcpErr(c, s.v6, portTCP+1) }, false, store.Inbound, "TCP", c.v6, s.v6, portTCP + 1, store.Drop, def},
		{"udp v4 default drop", func() error { return udpErr(c, s.v4, portUDP+1) }, false, store.Inbound, "UDP", c.v4, s.v4, portUDP + 1, store.Drop, def},
		{"udp v6 default drop", func() error { return udpErr(c, s.v6, portUDP+1) }, false, store.Inbound, "UDP", c.v6, s.v6, portUDP + 1, store.Drop, def},
		{"udp v4 outbound rule drop", func() error { return udpErr(s, c.v4, portUDP) }, false, store.Outbound, "UDP", s.v4, c.v4, portUDP, store.Drop, ruleRef(6)},
		{"tcp v4 SMTP row drop", func() error { return tcpErr(s, c.v4, 25) }, false, store.Outbound, "TCP", s.v4, c.v4, 25,
			store.Drop, explain.RuleRef{Kind: explain.KindSMTP, RuleID: smtp[0].ID, Position: 1}},
		{"tcp v6 SMTP row drop", func() error { return tcpErr(s, c.v6, 587) }, false, store.Outbound, "TCP", s.v6, c.v6, 587,
			store.Drop, explain.RuleRef{Kind: explain.KindSMTP, RuleID: smtp[5].ID, Position: 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(); (err == nil) != tt.pass {
				t.Fatalf("sent: err = %v, want it to pass: %v", err, tt.pass)
			}
			want := func(e Entry) bool {
				return e.Direction == tt.dir && e.Protocol == tt.proto && e.Source == tt.src && e.Destination == tt.dst &&
					e.DestinationPort == tt.dport && e.Verdict == tt.verdict && e.GroupID == groupID && e.DecidedBy == tt.decidedBy &&
					(tt.proto == "ICMP") == (e.SourcePort == 0) && !e.Time.IsZero()
			}
			waitFor(t, "entry", func() bool {
				es, _ := col.snapshot()
				for _, e := range es {
					if want(e) {
						return true
					}
				}
				return false
			})
		})
	}
	// A rule that does not log gives no entry, even when it decides.
	if err := tcpErr(c, s.v4, 9000); err == nil || isTimeout(err) {
		t.Errorf("tcp to 9000 (accepted, nobody listening): %v, want a reset", err)
	}
	var tags []string
	for _, rl := range rules {
		if rl.Log {
			tags = append(tags, rl.ID)
		}
	}
	tags = append(tags, enforcer.TagDefaultIn)
	for _, rl := range smtp {
		tags = append(tags, rl.ID)
	}
	counted, st, limited := accounted(t, n, r, tags)
	es, _ := col.snapshot()
	for _, e := range es {
		if e.DestinationPort == 9000 || e.DecidedBy.RuleID == "r-quiet" {
			t.Errorf("entry for a rule that does not log: %+v", e)
		}
	}
	if st.Unparsed != 0 || uint64(len(es)) != st.Received {
		t.Errorf("%d entries, stats %+v", len(es), st)
	}
	t.Logf("%d packets logged: %d entries, %d refused by the limit, %d dropped for lack of buffer", counted, st.Received, limited, st.BufferDrops)
}

func isTimeout(err error) bool {
	return err != nil && strings.Contains(err.Error(), "timeout")
}

// TestKernelLogFlood floods a logged default drop with 100,000 UDP
// datagrams: the entries stay within the group's limit (burst, then rate),
// the reader's memory stays bounded, and every packet is accounted for.
// Then, with the limit lifted, a small socket buffer and a slow consumer,
// the kernel drops entries for lack of buffer, and those are counted too.
func TestKernelLogFlood(t *testing.T) {
	n := newNet(t)
	g := store.Group{Stateful: true, InboundDefaultPolicy: store.Drop, OutboundDefaultPolicy: store.Accept, LogDefaultDrops: true, SMTPEnabled: true}
	snap := n.snapshot(g)
	tags := []string{enforcer.TagDefaultIn}
	const packets = 100_000
	limit := enforcer.LogLimit{Rate: 50, Burst: 100}

	t.Run("limited", func(t *testing.T) {
		r, col := n.startReader(t, Config{Index: NewIndex(snap)}, false)
		n.apply(t, snap, enforcer.LogConfig{Limit: limit})
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		stop := sampleHeap()
		start := time.Now()
		flood(t, n, packets)
		took := time.Since(start)
		counted, st, limited := accounted(t, n, r, tags)
		elapsed := time.Since(start)
		var delivered int
		waitFor(t, "entries delivered", func() bool {
			_, delivered = col.snapshot()
			return uint64(delivered) == st.Received-st.Unparsed
		})
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		t.Logf("%d datagrams sent in %v; counted %d; %d entries, %d refused by the limit, %d dropped for lack of buffer, %d overruns; heap %d -> %d KiB",
			packets, took.Round(time.Millisecond), counted, st.Received, limited, st.BufferDrops, st.Overruns, before.HeapAlloc>>10, after.HeapAlloc>>10)
		if counted < packets*9/10 {
			t.Errorf("the rule counted %d of %d datagrams", counted, packets)
		}
		if most := uint64(limit.Burst) + limit.Rate*uint64(elapsed.Seconds()+1); st.Received > most {
			t.Errorf("%d entries in %v, more than the limit allows (%d)", st.Received, elapsed, most)
		}
		if st.Received < uint64(limit.Burst) {
			t.Errorf("%d entries, fewer than the burst", st.Received)
		}
		peak := stop()
		t.Logf("heap: %d KiB before, at most %d KiB during the flood", before.HeapAlloc>>10, peak>>10)
		if grew := int64(peak) - int64(before.HeapAlloc); grew > 8<<20 {
			t.Errorf("heap grew by %d KiB during the flood", grew>>10)
		}
		if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 1<<20 {
			t.Errorf("heap grew by %d KiB over the flood", grew>>10)
		}
	})

	t.Run("buffer drops", func(t *testing.T) {
		// No limit to speak of, a socket buffer of a few messages and a
		// consumer that takes 20 ms a batch: the kernel must drop.
		r, _ := n.startReader(t, Config{Index: NewIndex(snap), ReadBuffer: 4096, MaxBatch: 16,
			Deliver: func([]Entry, Stats) { time.Sleep(20 * time.Millisecond) }}, false)
		n.apply(t, snap, enforcer.LogConfig{Limit: enforcer.LogLimit{Rate: 10_000_000, Burst: 10_000_000}})
		base := n.counters(t)
		flood(t, n, packets/5)
		// The counters since this subtest began: the reader is new.
		waitFor(t, "every logged packet accounted for", func() bool {
			c := n.counters(t)
			st := r.Stats()
			counted := c[enforcer.TagDefaultIn].Packets - base[enforcer.TagDefaultIn].Packets
			limited := c[enforcer.TagLogLimited].Packets - base[enforcer.TagLogLimited].Packets
			if counted != st.Received+limited+st.BufferDrops {
				// The last drops show only at the next entry: send one.
				sendDatagrams(t, n, 1)
				return false
			}
			t.Logf("counted %d: %d entries, %d refused by the limit, %d dropped for lack of buffer (%d overruns)",
				counted, st.Received, limited, st.BufferDrops, st.Overruns)
			return true
		})
		if st := r.Stats(); st.BufferDrops == 0 || st.Overruns == 0 {
			t.Errorf("stats = %+v, want buffer drops and overruns", st)
		}
	})
}

// sampleHeap samples the live heap every 5 ms until the returned function
// is called, which returns the largest sample.
func sampleHeap() func() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	done, peak := make(chan struct{}), make(chan uint64)
	go func() {
		var highest uint64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			highest = max(highest, sample[0].Value.Uint64())
			select {
			case <-done:
				peak <- highest
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-peak }
}

// flood sends count datagrams from the client to a port the server's
// group drops, and fails the test if that takes more than 30 s.
func flood(t *testing.T, n *testNet, count int) {
	t.Helper()
	start := time.Now()
	sendDatagrams(t, n, count)
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("sending %d datagrams took %v", count, d)
	}
}

func sendDatagrams(t *testing.T, n *testNet, count int) {
	t.Helper()
	conn, err := udpConn(n.client, n.server.v4, 7777)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := []byte("flood")
	for i := 0; i < count; i++ {
		if _, err := conn.Write(payload); err != nil {
			t.Fatal(fmt.Errorf("datagram %d: %w", i, err))
		}
	}
}
