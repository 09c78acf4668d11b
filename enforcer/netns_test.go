//go:build linux

package enforcer

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/internal/netnstest"
	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Timeouts for probes: short, because an expected drop costs one timeout.
const (
	probeTimeout = 300 * time.Millisecond
)

// The namespace helpers live in internal/netnstest, shared with the
// explain package's differential test.
var (
	requireRoot = netnstest.RequireRoot
	runCmd      = netnstest.Run
	newNS       = netnstest.NewNS
)

// node is one namespace of the topology with its addresses.
type node struct {
	name string
	h    netns.NsHandle
	v4   string // address on its link to the router
	v6   string
}

// topo is the test network, all of it inside namespaces made for the test:
//
//	client (10.99.0.2) --rc-- router --vs1-- s1 (10.99.1.2)
//	                            |---vs2-- s2 (10.99.2.2)
//
// with fd99:N::2 beside each 10.99.N.2. The enforcer runs in router, whose
// interfaces vs1 and vs2 are the servers' Interface.
type topo struct {
	client, router, s1, s2 node
}

func newTopo(tb testing.TB) *topo {
	tb.Helper()
	t := &topo{}
	var rn string
	rn, t.router.h = newNS(tb, "r")
	t.router.name = rn
	t.router.v4, t.router.v6 = "10.99.0.1", "fd99:0::1"
	runCmd(tb, "ip", "netns", "exec", rn, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	for i, spec := range []struct {
		n      *node
		role   string
		rIface string
	}{{&t.client, "c", "rc"}, {&t.s1, "s1", "vs1"}, {&t.s2, "s2", "vs2"}} {
		name, h := newNS(tb, spec.role)
		*spec.n = node{name: name, h: h, v4: fmt.Sprintf("10.99.%d.2", i), v6: fmt.Sprintf("fd99:%d::2", i)}
		runCmd(tb, "ip", "-n", rn, "link", "add", spec.rIface, "type", "veth", "peer", "name", "eth0", "netns", name)
		runCmd(tb, "ip", "-n", rn, "addr", "add", fmt.Sprintf("10.99.%d.1/24", i), "dev", spec.rIface)
		runCmd(tb, "ip", "-n", rn, "addr", "add", fmt.Sprintf("fd99:%d::1/64", i), "dev", spec.rIface, "nodad")
		runCmd(tb, "ip", "-n", rn, "link", "set", spec.rIface, "up")
		runCmd(tb, "ip", "-n", name, "addr", "add", spec.n.v4+"/24", "dev", "eth0")
		runCmd(tb, "ip", "-n", name, "addr", "add", spec.n.v6+"/64", "dev", "eth0", "nodad")
		runCmd(tb, "ip", "-n", name, "link", "set", "eth0", "up")
		runCmd(tb, "ip", "-n", name, "route", "add", "default", "via", fmt.Sprintf("10.99.%d.1", i))
		runCmd(tb, "ip", "-n", name, "-6", "route", "add", "default", "via", fmt.Sprintf("fd99:%d::1", i))
	}
	// Resolve neighbours before any ruleset exists, so that probes measure
	// the ruleset and not neighbour discovery.
	for _, n := range []node{t.client, t.s1, t.s2} {
		for _, dst := range []string{n.v4, n.v6} {
			gw := dst[:len(dst)-1] + "1" // x.x.x.2 -> x.x.x.1, fd99:N::2 -> fd99:N::1
			var err error
			for try := 0; try < 10; try++ {
				if err = pingErr(n, gw); err == nil {
					break
				}
			}
			if err != nil {
				tb.Fatalf("%s cannot reach %s: %v", n.name, gw, err)
			}
		}
	}
	return t
}

// inNS runs f on an OS thread switched into namespace h (see netnstest.InNS).
func inNS[T any](h netns.NsHandle, f func() (T, error)) (T, error) { return netnstest.InNS(h, f) }

// serveTCP listens on every address of n (IPv4 and IPv6) on port and
// answers each connection with "ok\n".
func serveTCP(tb testing.TB, n node, port int) {
	tb.Helper()
	ln, err := inNS(n.h, func() (net.Listener, error) { return net.Listen("tcp", fmt.Sprintf(":%d", port)) })
	if err != nil {
		tb.Fatalf("listen tcp %d in %s: %v", port, n.name, err)
	}
	tb.Cleanup(func() { ln.Close() })
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

// serveUDP echoes datagrams on port.
func serveUDP(tb testing.TB, n node, port int) {
	tb.Helper()
	pc, err := inNS(n.h, func() (net.PacketConn, error) { return net.ListenPacket("udp", fmt.Sprintf(":%d", port)) })
	if err != nil {
		tb.Fatalf("listen udp %d in %s: %v", port, n.name, err)
	}
	tb.Cleanup(func() { pc.Close() })
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

// tcpErr connects from n to host:port and reads the greeting.
func tcpErr(n node, host string, port int) error {
	c, err := inNS(n.h, func() (net.Conn, error) {
		return net.DialTimeout("tcp", net.JoinHostPort(host, fmt.Sprint(port)), probeTimeout)
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

// udpErr sends a datagram from n to host:port and waits for the echo.
func udpErr(n node, host string, port int) error {
	c, err := inNS(n.h, func() (net.Conn, error) {
		return net.Dial("udp", net.JoinHostPort(host, fmt.Sprint(port)))
	})
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 16)
	k, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:k]) != "ping" {
		return fmt.Errorf("echo %q", buf[:k])
	}
	return nil
}

// pingErr sends one ICMP (or ICMPv6) echo request from n to host and waits
// for the reply, on a raw socket.
func pingErr(n node, host string) error {
	dst := net.ParseIP(host)
	v6 := dst.To4() == nil
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var typ, replyTyp icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if v6 {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		typ, replyTyp = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	c, err := inNS(n.h, func() (*icmp.PacketConn, error) { return icmp.ListenPacket(network, laddr) })
	if err != nil {
		return err
	}
	defer c.Close()
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := int(idb[0])<<8 | int(idb[1])
	msg, _ := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("rampart")}}).Marshal(nil)
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: dst}); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(probeTimeout))
	buf := make([]byte, 1500)
	for {
		k, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(proto, buf[:k])
		if err != nil || m.Type != replyTyp {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && from.(*net.IPAddr).IP.Equal(dst) {
			return nil
		}
	}
}

// expect fails the test when a probe's outcome is not the wanted one.
func expect(tb testing.TB, what string, err error, pass bool) {
	tb.Helper()
	switch {
	case pass && err != nil:
		tb.Errorf("%s: blocked (%v), want it to pass", what, err)
	case !pass && err == nil:
		tb.Errorf("%s: passed, want it dropped", what)
	case !pass && !isTimeout(err):
		tb.Errorf("%s: failed with %v, want a silent drop (timeout)", what, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// listTable returns `nft list table inet rampart` in namespace ns.
func listTable(tb testing.TB, ns string) string {
	tb.Helper()
	return runCmd(tb, "ip", "netns", "exec", ns, "nft", "list", "table", "inet", TableName)
}

// tableExists reports whether ns holds the rampart table.
func tableExists(ns string) bool {
	return exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", TableName).Run() == nil
}
