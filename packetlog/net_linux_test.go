//go:build linux

package packetlog

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/internal/netnstest"
	"github.com/rampart-fw/rampart/store"
)

// The test network, in namespaces made for the test:
//
//	client (10.98.0.2, fd98::2) --rc-- router --vs-- server (10.98.1.2, fd98:1::2)
//
// The enforcer and the reader run in router; vs is the server's interface.

const (
	groupID  = "aaaaaaaa-0000-4000-8000-00000000000a"
	serverIf = "vs"
	portTCP  = 8080 // TCP, answered "ok\n" by client and server
	portUDP  = 5353 // UDP echo on client and server
)

type host struct {
	name   string
	h      netns.NsHandle
	v4, v6 netip.Addr
}

type testNet struct {
	client, router, server host
	backend                *enforcer.NFTables
	compiler               enforcer.Compiler
	prev                   *enforcer.Ruleset
}

func newNet(t testing.TB) *testNet {
	t.Helper()
	netnstest.RequireRoot(t)
	n := &testNet{}
	rn, rh := netnstest.NewNS(t, "lr")
	n.router = host{name: rn, h: rh}
	netnstest.Run(t, "ip", "netns", "exec", rn, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	for i, spec := range []struct {
		h      *host
		role   string
		rIface string
	}{{&n.client, "lc", "rc"}, {&n.server, "ls", serverIf}} {
		name, h := netnstest.NewNS(t, spec.role)
		*spec.h = host{name: name, h: h,
			v4: netip.MustParseAddr(fmt.Sprintf("10.98.%d.2", i)), v6: netip.MustParseAddr(fmt.Sprintf("fd98:%d::2", i))}
		netnstest.Run(t, "ip", "-n", rn, "link", "add", spec.rIface, "type", "veth", "peer", "name", "eth0", "netns", name)
		netnstest.Run(t, "ip", "-n", rn, "addr", "add", fmt.Sprintf("10.98.%d.1/24", i), "dev", spec.rIface)
		netnstest.Run(t, "ip", "-n", rn, "addr", "add", fmt.Sprintf("fd98:%d::1/64", i), "dev", spec.rIface, "nodad")
		netnstest.Run(t, "ip", "-n", rn, "link", "set", spec.rIface, "up")
		netnstest.Run(t, "ip", "-n", name, "addr", "add", spec.h.v4.String()+"/24", "dev", "eth0")
		netnstest.Run(t, "ip", "-n", name, "addr", "add", spec.h.v6.String()+"/64", "dev", "eth0", "nodad")
		netnstest.Run(t, "ip", "-n", name, "link", "set", "eth0", "up")
		netnstest.Run(t, "ip", "-n", name, "route", "add", "default", "via", fmt.Sprintf("10.98.%d.1", i))
		netnstest.Run(t, "ip", "-n", name, "-6", "route", "add", "default", "via", fmt.Sprintf("fd98:%d::1", i))
	}
	for _, h := range []host{n.client, n.server} {
		serveTCP(t, h, portTCP)
		serveUDP(t, h, portUDP)
	}
	// Neighbours resolved before any ruleset exists.
	for _, a := range []netip.Addr{n.server.v4, n.server.v6} {
		var err error
		for try := 0; try < 20; try++ {
			if err = pingErr(n.client, a); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("client cannot reach %s: %v", a, err)
		}
	}
	b, err := enforcer.NewNFTables(enforcer.WithNetNS(int(n.router.h)))
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the namespaces' cleanups, so it runs first.
	t.Cleanup(func() { b.Close() })
	n.backend = b
	return n
}

// snapshot is group g (the server's), with rules in position order.
func (n *testNet) snapshot(g store.Group, rules ...store.Rule) store.Snapshot {
	g.ID, g.Generation = groupID, 1
	for i := range rules {
		rules[i].GroupID, rules[i].Position, rules[i].Editable = groupID, i+1, true
	}
	return store.Snapshot{Generation: 1, Groups: []store.Group{g}, Rules: map[string][]store.Rule{groupID: rules},
		Servers: []store.Server{{ID: "srv", Name: "srv", Type: store.Instance, Interface: serverIf, SecurityGroup: store.ServerRef{ID: groupID}}}}
}

// apply compiles snap with cfg and applies it incrementally.
func (n *testNet) apply(t testing.TB, snap store.Snapshot, cfg enforcer.LogConfig) *enforcer.Ruleset {
	t.Helper()
	n.compiler.Log = cfg
	rs := n.compiler.Compile(snap)
	if len(rs.Errors) > 0 {
		t.Fatalf("compile: %v", rs.Errors)
	}
	if err := n.backend.Apply(context.Background(), n.prev, rs); err != nil {
		t.Fatalf("apply: %v", err)
	}
	n.prev = rs
	return rs
}

// counters reads the group's counters.
func (n *testNet) counters(t testing.TB) map[string]enforcer.Counter {
	t.Helper()
	g, _ := n.prev.Group(groupID)
	c, err := n.backend.GroupCounters(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	return c[groupID]
}

func rule(id string, dir store.Direction, proto store.Protocol, action store.Policy, ipRange string, port uint16, log bool) store.Rule {
	return store.Rule{ID: id, Direction: dir, Protocol: proto, Action: action,
		IPRange: netip.MustParsePrefix(ipRange), DestPortFrom: port, Log: log}
}

// collector gathers delivered entries.
type collector struct {
	mu      sync.Mutex
	entries []Entry
	count   int
	keep    bool
	last    Stats
}

func (c *collector) deliver(es []Entry, st Stats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.count += len(es)
	if c.keep {
		c.entries = append(c.entries, es...)
	}
	c.last = st
}

func (c *collector) snapshot() ([]Entry, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Entry(nil), c.entries...), c.count
}

// startReader reads the router's NFLOG group into a collector.
func (n *testNet) startReader(t testing.TB, cfg Config, keep bool) (*Reader, *collector) {
	t.Helper()
	c := &collector{keep: keep}
	cfg.NetNS = int(n.router.h)
	if cfg.Deliver == nil {
		cfg.Deliver = c.deliver
	}
	r, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, c
}

// waitFor polls cond every 20 ms and fails the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const probeTimeout = 300 * time.Millisecond

func inNS[T any](h netns.NsHandle, f func() (T, error)) (T, error) { return netnstest.InNS(h, f) }

func serveTCP(t testing.TB, h host, port int) {
	t.Helper()
	ln, err := inNS(h.h, func() (net.Listener, error) { return net.Listen("tcp", fmt.Sprintf(":%d", port)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("ok\n"))
			c.Close()
		}
	}()
}

func serveUDP(t testing.TB, h host, port int) {
	t.Helper()
	pc, err := inNS(h.h, func() (net.PacketConn, error) { return net.ListenPacket("udp", fmt.Sprintf(":%d", port)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			k, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:k], addr)
		}
	}()
}

// tcpErr connects from h to addr:port and reads the greeting.
func tcpErr(h host, addr netip.Addr, port int) error {
	c, err := inNS(h.h, func() (net.Conn, error) {
		return net.DialTimeout("tcp", netip.AddrPortFrom(addr, uint16(port)).String(), probeTimeout)
	})
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ok\n" {
		return fmt.Errorf("greeting %q", line)
	}
	return nil
}

// udpConn is a UDP socket of h connected to addr:port.
func udpConn(h host, addr netip.Addr, port int) (net.Conn, error) {
	return inNS(h.h, func() (net.Conn, error) {
		return net.Dial("udp", netip.AddrPortFrom(addr, uint16(port)).String())
	})
}

// udpErr sends a datagram from h to addr:port and waits for the echo.
func udpErr(h host, addr netip.Addr, port int) error {
	c, err := udpConn(h, addr, port)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 16)
	if _, err := c.Read(buf); err != nil {
		return err
	}
	return nil
}

// pingErr sends one echo request from h to addr and waits for the reply.
func pingErr(h host, addr netip.Addr) error {
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var typ, replyTyp icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if addr.Is6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		typ, replyTyp = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	c, err := inNS(h.h, func() (*icmp.PacketConn, error) { return icmp.ListenPacket(network, laddr) })
	if err != nil {
		return err
	}
	defer c.Close()
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := int(idb[0])<<8 | int(idb[1])
	msg, _ := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("rampart")}}).Marshal(nil)
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: addr.AsSlice()}); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(probeTimeout))
	buf := make([]byte, 1500)
	for {
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(proto, buf[:k])
		if err != nil || m.Type != replyTyp {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id {
			return nil
		}
	}
}
