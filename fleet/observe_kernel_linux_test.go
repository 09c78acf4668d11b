//go:build linux

package fleet_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/rampart-fw/rampart/agent"
	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/fleet"
	"github.com/rampart-fw/rampart/internal/netnstest"
	"github.com/rampart-fw/rampart/packetlog"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

// The observation lab, every part a namespace made for the test:
//
//	console host "oc" (10.97.1.1, fd97:1::1) ── client (10.97.1.2, fd97:1::2 / 10.97.2.2, fd97:2::2) ── agent host "oa" (10.97.2.1, fd97:2::1)
//
// The console (fleet.Console) enforces its own host, oc, and reads its
// packet log there; the agent (in this process) enforces oa and reads its
// log there. Each host is a local server of one group, whose rules log.
// The console's API is what is checked.

// obsHost is a host of the lab: its namespace and addresses.
type obsHost struct {
	ns     string
	h      netns.NsHandle
	v4, v6 netip.Addr
}

const (
	obsTCP  = 7010 // accepted by a rule that logs; answered "ok\n"
	obsUDP  = 7011 // accepted (IPv4) by a rule that logs; echoed
	obsShut = 7012 // dropped by the default policy
)

// TestObserveKernel: real packets, IPv4 and IPv6, TCP, UDP and ICMP, to a
// console's host and an agent's, become entries of the group's log in the
// console's API, each naming its host, its server and the rule (or the
// default policy) that decided; and N connections accepted by a rule count
// exactly N in the API, summed over both hosts, across a reorder, an edit
// of another rule and a restart of the console and of the agent.
func TestObserveKernel(t *testing.T) {
	netnstest.RequireRoot(t)
	ctx := context.Background()
	clientNS, clientH := netnstest.NewNS(t, "ocl")
	client := obsHost{ns: clientNS, h: clientH}
	var hosts [2]obsHost
	for i, role := range []string{"oc", "oa"} {
		ns, h := netnstest.NewNS(t, role)
		hosts[i] = obsHost{ns: ns, h: h, v4: netip.MustParseAddr(fmt.Sprintf("10.97.%d.1", i+1)), v6: netip.MustParseAddr(fmt.Sprintf("fd97:%d::1", i+1))}
		peer := fmt.Sprintf("h%d", i)
		netnstest.Run(t, "ip", "-n", ns, "link", "add", "up0", "type", "veth", "peer", "name", peer, "netns", clientNS)
		netnstest.Run(t, "ip", "-n", ns, "addr", "add", hosts[i].v4.String()+"/24", "dev", "up0")
		netnstest.Run(t, "ip", "-n", ns, "addr", "add", hosts[i].v6.String()+"/64", "dev", "up0", "nodad")
		netnstest.Run(t, "ip", "-n", ns, "link", "set", "up0", "up")
		netnstest.Run(t, "ip", "-n", clientNS, "addr", "add", fmt.Sprintf("10.97.%d.2/24", i+1), "dev", peer)
		netnstest.Run(t, "ip", "-n", clientNS, "addr", "add", fmt.Sprintf("fd97:%d::2/64", i+1), "dev", peer, "nodad")
		netnstest.Run(t, "ip", "-n", clientNS, "link", "set", peer, "up")
		// Neighbours fixed: a host that drops inbound packets by default
		// (a local server's group) drops neighbour discovery too, which
		// would end IPv6 once the entries go stale.
		hostMAC := must[*net.Interface](t)(netnstest.Interface(hosts[i].h, "up0")).HardwareAddr.String()
		peerMAC := must[*net.Interface](t)(netnstest.Interface(clientH, peer)).HardwareAddr.String()
		netnstest.Run(t, "ip", "-n", ns, "neigh", "replace", fmt.Sprintf("fd97:%d::2", i+1), "lladdr", peerMAC, "dev", "up0", "nud", "permanent")
		netnstest.Run(t, "ip", "-n", clientNS, "neigh", "replace", hosts[i].v6.String(), "lladdr", hostMAC, "dev", peer, "nud", "permanent")
		obsServeTCP(t, hosts[i].h, obsTCP)
		obsServeTCP(t, hosts[i].h, obsShut)
		obsServeUDP(t, hosts[i].h, obsUDP)
		for _, a := range []netip.Addr{hosts[i].v4, hosts[i].v6} {
			waitFor(t, "the client reaching "+a.String(), func() bool { return obsPing(client.h, a) == nil })
		}
	}
	oc, oa := hosts[0], hosts[1]

	// The console, enforcing and logging in oc; its agents' endpoint on
	// this process's loopback, on a port kept across its restart.
	db := openDB(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	startOC := func() *console {
		be, err := enforcer.NewNFTables(enforcer.WithNetNS(int(oc.h)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		return startConsole(t, db, consoleOpts{backend: be, hostName: "oc", packetLog: &packetlog.Config{NetNS: int(oc.h)},
			listen: func() (net.Listener, error) { return net.Listen("tcp", addr) }})
	}
	con := startOC()
	org := must[store.Organization](t)(db.EnsureOrganization(ctx, "acme"))
	_, secret, err := db.CreateToken(ctx, org.ID, "api")
	if err != nil {
		t.Fatal(err)
	}
	_, token := must2(t)(fleet.CreateHost(ctx, db, "oa", 0))
	g := must[store.Group](t)(db.CreateGroup(ctx, org.ID, zone, store.GroupInput{Name: "web", Stateful: true,
		InboundDefaultPolicy: store.Drop, OutboundDefaultPolicy: store.Accept, SMTPEnabled: true}))
	rule := func(proto store.Protocol, ipRange string, port int) store.Rule {
		return must[store.Rule](t)(db.CreateRule(ctx, org.ID, zone, g.ID, store.RuleInput{Direction: store.Inbound, Protocol: proto,
			Action: store.Accept, IPRange: ipRange, DestPortFrom: &port, Log: ptr(true)}))
	}
	r4, r6, rUDP := rule(store.TCP, "0.0.0.0/0", obsTCP), rule(store.TCP, "::/0", obsTCP), rule(store.UDP, "0.0.0.0/0", obsUDP)
	var servers [2]store.Server
	for i, name := range []string{"oc", "oa"} {
		servers[i] = must[store.Server](t)(db.CreateServer(ctx, org.ID, zone, store.ServerInput{Name: "host-" + name, Local: true,
			Host: name, Addresses: []string{hosts[i].v4.String(), hosts[i].v6.String()}, SecurityGroupID: g.ID}))
	}
	state := filepath.Join(t.TempDir(), "oa")
	startOA := func(token string) *runningAgent {
		be, err := enforcer.NewNFTables(enforcer.WithNetNS(int(oa.h)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		return startAgent(t, agent.Config{Consoles: []string{"https://" + addr}, JoinToken: token, StateDir: state, Backend: be,
			PacketLog: &packetlog.Config{NetNS: int(oa.h)}})
	}
	a := startOA(token)
	available := func(what string) {
		t.Helper()
		waitFor(t, what, func() bool {
			cur := must[store.Group](t)(db.Group(ctx, org.ID, zone, g.ID))
			st, _ := con.c.GroupState(cur.ID, cur.Generation)
			return st == store.Available
		})
	}
	available("the group on both hosts")

	// The console's API, as serve answers it.
	api := func(path string, out any) {
		t.Helper()
		srv, err := web.New(web.Config{Store: db, Enforcer: con.c, Fleet: con.c, Logger: testLog(t)})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv)
		defer ts.Close()
		req, _ := http.NewRequest("GET", ts.URL+"/instance/v1/zones/"+zone+"/security_groups/"+g.ID+path, nil)
		req.Header.Set("X-Auth-Token", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || json.Unmarshal(raw, out) != nil {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
		}
	}

	// Packets: what passes and what is dropped, each way it is logged.
	type want struct {
		name     string
		send     func() error
		pass     bool
		host     int // 0: oc, 1: oa
		proto    string
		dst      netip.Addr
		port     int
		verdict  string
		decided  string // "rule <id>" or "default_policy"
		position int
	}
	var wants []want
	for i, h := range hosts {
		wants = append(wants,
			want{"TCP v4 accepted", func() error { return obsTCPErr(client.h, h.v4, obsTCP) }, true, i, "TCP", h.v4, obsTCP, "accept", "rule " + r4.ID, 1},
			want{"TCP v6 accepted", func() error { return obsTCPErr(client.h, h.v6, obsTCP) }, true, i, "TCP", h.v6, obsTCP, "accept", "rule " + r6.ID, 2},
			want{"UDP v4 accepted", func() error { return obsUDPErr(client.h, h.v4, obsUDP) }, true, i, "UDP", h.v4, obsUDP, "accept", "rule " + rUDP.ID, 3},
			want{"UDP v6 dropped", func() error { return obsUDPErr(client.h, h.v6, obsUDP) }, false, i, "UDP", h.v6, obsUDP, "drop", "default_policy", 0},
			want{"TCP v4 dropped", func() error { return obsTCPErr(client.h, h.v4, obsShut) }, false, i, "TCP", h.v4, obsShut, "drop", "default_policy", 0},
			want{"ICMP v4 dropped", func() error { return obsPing(client.h, h.v4) }, false, i, "ICMP", h.v4, 0, "drop", "default_policy", 0},
			want{"ICMPv6 dropped", func() error { return obsPing(client.h, h.v6) }, false, i, "ICMP", h.v6, 0, "drop", "default_policy", 0},
		)
	}
	for _, w := range wants {
		if err := w.send(); (err == nil) != w.pass {
			t.Fatalf("%s to host %d: %v, want it to pass: %v", w.name, w.host, err, w.pass)
		}
	}
	type entry struct {
		Host, Protocol, Destination, Verdict string
		ServerID                             *string `json:"server_id"`
		DestinationPort                      *int    `json:"destination_port"`
		DecidedBy                            struct {
			Kind     string
			RuleID   string `json:"rule_id"`
			Position int
		} `json:"decided_by"`
	}
	names := []string{"oc", "oa"}
	var got []entry
	took := waitFor(t, "every entry in the API", func() bool {
		var page struct{ Entries []entry }
		api("/logs?per_page=1000", &page)
		got = page.Entries
		for _, w := range wants {
			found := false
			for _, e := range got {
				decided := e.DecidedBy.Kind
				if e.DecidedBy.RuleID != "" {
					decided = e.DecidedBy.Kind + " " + e.DecidedBy.RuleID
				}
				port := 0
				if e.DestinationPort != nil {
					port = *e.DestinationPort
				}
				if e.Host == names[w.host] && e.Protocol == w.proto && e.Destination == w.dst.String() && port == w.port &&
					e.Verdict == w.verdict && decided == w.decided && e.DecidedBy.Position == w.position &&
					e.ServerID != nil && *e.ServerID == servers[w.host].ID {
					found = true
				}
			}
			if !found {
				return false
			}
		}
		return true
	})
	t.Logf("%d packets sent, %d entries in the API %s later", len(wants), len(got), took)

	// Counters: connections accepted by r4 on both hosts, across a
	// reorder, an edit of another rule, a restart of the console and of
	// the agent; each is one packet of r4 (the rest of the connection is
	// the stateful exception's).
	counted := map[string]uint64{r4.ID: 2} // the two above
	connect := func(n int) {
		t.Helper()
		for k := 0; k < n; k++ {
			for _, h := range hosts {
				if err := obsTCPErr(client.h, h.v4, obsTCP); err != nil {
					t.Fatalf("connection to %s: %v", h.v4, err)
				}
				counted[r4.ID]++
			}
		}
	}
	connect(3)
	must[store.Rule](t)(db.MoveRule(ctx, org.ID, zone, g.ID, rUDP.ID, 1))
	available("after the reorder")
	connect(3)
	must[store.Rule](t)(db.UpdateRule(ctx, org.ID, zone, g.ID, r6.ID, store.RulePatch{DestPortFrom: ptr(obsTCP + 100)}))
	available("after the edit of another rule")
	connect(3)
	con.stop()
	connect(2) // counted by the kernels while no console runs
	con = startOC()
	a.stop()
	a = startOA("")
	available("after the restarts")
	connect(3)
	var rules struct {
		Rules []struct {
			ID          string
			Packets     uint64
			LastMatched *string `json:"last_matched"`
		}
	}
	took = waitFor(t, fmt.Sprintf("rule %s counting exactly %d", r4.ID, counted[r4.ID]), func() bool {
		api("/rules", &rules)
		for _, r := range rules.Rules {
			if r.ID == r4.ID {
				return r.Packets == counted[r4.ID] && r.LastMatched != nil
			}
		}
		return false
	})
	t.Logf("%d connections on two hosts counted exactly, %s after the last", counted[r4.ID], took)
	// And no more a moment later.
	time.Sleep(1500 * time.Millisecond)
	api("/rules", &rules)
	for _, r := range rules.Rules {
		if r.ID == r4.ID && r.Packets != counted[r4.ID] {
			t.Errorf("rule %s counts %d, want %d", r4.ID, r.Packets, counted[r4.ID])
		}
	}
	_ = a
}

func obsServeTCP(t *testing.T, h netns.NsHandle, port int) {
	ln, err := netnstest.InNS(h, func() (net.Listener, error) { return net.Listen("tcp", fmt.Sprintf(":%d", port)) })
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
			c.Write([]byte("ok\n"))
			c.Close()
		}
	}()
}

func obsServeUDP(t *testing.T, h netns.NsHandle, port int) {
	pc, err := netnstest.InNS(h, func() (net.PacketConn, error) { return net.ListenPacket("udp", fmt.Sprintf(":%d", port)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// obsTCPErr connects from h to addr:port and reads the greeting.
func obsTCPErr(h netns.NsHandle, addr netip.Addr, port int) error {
	c, err := netnstest.InNS(h, func() (net.Conn, error) {
		return net.DialTimeout("tcp", netip.AddrPortFrom(addr, uint16(port)).String(), probeTimeout)
	})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(probeTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && line != "ok\n" {
		err = fmt.Errorf("greeting %q", line)
	}
	return err
}

// obsUDPErr sends a datagram from h to addr:port and waits for its echo.
func obsUDPErr(h netns.NsHandle, addr netip.Addr, port int) error {
	c, err := netnstest.InNS(h, func() (net.Conn, error) {
		return net.Dial("udp", netip.AddrPortFrom(addr, uint16(port)).String())
	})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 16))
	return err
}

// obsPing sends one echo request from h to addr and waits for the reply.
func obsPing(h netns.NsHandle, addr netip.Addr) error {
	network, laddr := "ip4:icmp", "0.0.0.0"
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if addr.Is6() {
		network, laddr, typ = "ip6:ipv6-icmp", "::", ipv6.ICMPTypeEchoRequest
	}
	c, err := netnstest.InNS(h, func() (*icmp.PacketConn, error) { return icmp.ListenPacket(network, laddr) })
	if err != nil {
		return err
	}
	defer c.Close()
	msg, _ := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: 7, Seq: 1, Data: []byte("rampart")}}).Marshal(nil)
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: addr.AsSlice()}); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(probeTimeout))
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		proto := 1
		if addr.Is6() {
			proto = 58
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err == nil && (m.Type == ipv4.ICMPTypeEchoReply || m.Type == ipv6.ICMPTypeEchoReply) {
			return nil
		}
	}
}
