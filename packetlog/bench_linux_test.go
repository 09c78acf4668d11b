//go:build linux

package packetlog

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/internal/netnstest"
	"github.com/rampart-fw/rampart/store"
)

// BenchmarkLoggedConnections measures TCP connections per second from the
// client to the server through a stateful group whose one rule accepts
// them, with that rule not logging (off), logging every connection under
// the default rate limit (logged), and logging every connection under a
// limit too high to refuse any (logged_unlimited), while a Reader consumes
// the entries. The three alternate, sample by sample, in one run; the
// medians and the ratios to off are reported. Run it with -benchtime=1x.
func BenchmarkLoggedConnections(b *testing.B) {
	n := newNet(b)
	// 81,000 connections from one address to one port within a minute:
	// the client closes first, so each leaves a TIME_WAIT on its side, and
	// the default range (28,232 ports) runs out. Reusing TIME_WAIT ports
	// for new outgoing connections, over a wider range, keeps dialling.
	netnstest.Run(b, "ip", "netns", "exec", n.client.name, "sysctl", "-qw",
		"net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65000")
	var entries int
	_, col := n.startReader(b, Config{}, false)
	g := store.Group{Stateful: true, InboundDefaultPolicy: store.Drop, OutboundDefaultPolicy: store.Accept, SMTPEnabled: true}
	configs := []struct {
		name string
		log  bool
		cfg  enforcer.LogConfig
	}{
		{"off", false, enforcer.LogConfig{}},
		{"logged", true, enforcer.LogConfig{}},
		{"logged_unlimited", true, enforcer.LogConfig{Limit: enforcer.LogLimit{Rate: 10_000_000, Burst: 10_000_000}}},
	}
	const rounds, perSample = 9, 3000
	rates := make([][]float64, len(configs))
	for b.Loop() {
		for round := range rounds {
			for k := range configs {
				// Rotated, so that no configuration always runs first.
				i := (k + round) % len(configs)
				c := configs[i]
				n.apply(b, n.snapshot(g, rule("r-tcp", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", portTCP, c.log)), c.cfg)
				// Entries of the sample before have arrived (they wait
				// up to FlushTimeout in the kernel, then in the reader).
				time.Sleep(3 * DefaultFlushTimeout)
				_, before := col.snapshot()
				took, err := connections(n.client, n.server.v4, portTCP, perSample)
				if err != nil {
					b.Fatal(err)
				}
				rates[i] = append(rates[i], perSample/took.Seconds())
				if c.name == "logged_unlimited" {
					// Every connection's first packet is an entry.
					waitFor(b, "entries of every connection", func() bool {
						_, after := col.snapshot()
						entries = after - before
						return entries >= perSample
					})
					if entries != perSample {
						b.Fatalf("%d entries for %d connections", entries, perSample)
					}
				}
			}
		}
	}
	median := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2]
	}
	off := median(rates[0])
	for i, c := range configs {
		m := median(rates[i])
		b.ReportMetric(m, "conn/s_"+c.name)
		if i > 0 {
			b.ReportMetric(m/off, "x_"+c.name)
		}
	}
}

// connections opens count TCP connections one after another from h to
// addr:port, each read to its end, and returns how long that took. The
// dials run on one thread in h's namespace.
func connections(h host, addr netip.Addr, port, count int) (time.Duration, error) {
	return inNS(h.h, func() (time.Duration, error) {
		target := netip.AddrPortFrom(addr, uint16(port)).String()
		start := time.Now()
		for i := 0; i < count; i++ {
			c, err := net.DialTimeout("tcp", target, time.Second)
			if err != nil {
				return 0, fmt.Errorf("connection %d: %w", i, err)
			}
			_ = c.SetDeadline(time.Now().Add(time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil || line != "ok\n" {
				return 0, fmt.Errorf("connection %d: %q, %v", i, line, err)
			}
		}
		return time.Since(start), nil
	})
}
