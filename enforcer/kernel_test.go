//go:build linux

package enforcer

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/rampart-fw/rampart/store"
)

// Ports served in the topology.
const (
	portA   = 8080 // TCP on client, s1, s2
	portB   = 8081 // TCP on client, s1, s2
	portUDP = 5353 // UDP echo on client, s1, s2
	portL   = 2222 // TCP on router (local server)
	portL2  = 2223 // TCP on router
)

// env is a topology with the nftables backend opened in the router
// namespace and servers listening everywhere.
type env struct {
	*topo
	b    *NFTables
	prev *Ruleset
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireRoot(t)
	e := &env{topo: newTopo(t)}
	b, err := NewNFTables(WithNetNS(int(e.router.h)))
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	for _, n := range []node{e.client, e.s1, e.s2} {
		serveTCP(t, n, portA)
		serveTCP(t, n, portB)
		serveUDP(t, n, portUDP)
	}
	for _, p := range store.SMTPPorts {
		serveTCP(t, e.client, int(p))
	}
	serveTCP(t, e.router, portL)
	serveTCP(t, e.router, portL2)
	return e
}

// apply compiles snap and applies it incrementally from the last apply.
func (e *env) apply(t *testing.T, snap store.Snapshot) {
	t.Helper()
	rs := Compile(snap)
	if len(rs.Errors) > 0 {
		t.Fatalf("compile: %v", rs.Errors)
	}
	if err := e.b.Apply(context.Background(), e.prev, rs); err != nil {
		t.Fatalf("apply: %v", err)
	}
	e.prev = rs
}

func TestKernelDefaultPolicies(t *testing.T) {
	e := newEnv(t)
	for _, in := range []store.Policy{store.Accept, store.Drop} {
		for _, out := range []store.Policy{store.Accept, store.Drop} {
			t.Run(fmt.Sprintf("in_%s_out_%s", in, out), func(t *testing.T) {
				// chain sg_a_in  { ct state established,related counter accept; counter <in> }
				// chain sg_a_out { ct state established,related counter accept; counter <out> }
				e.apply(t, oneGroup(group(gA, true, in, out, false)))
				expect(t, "client -> s1 tcp v4", tcpErr(e.client, e.s1.v4, portA), in == store.Accept)
				expect(t, "client -> s1 tcp v6", tcpErr(e.client, e.s1.v6, portA), in == store.Accept)
				expect(t, "s1 -> client tcp v4", tcpErr(e.s1, e.client.v4, portA), out == store.Accept)
				expect(t, "s1 -> client tcp v6", tcpErr(e.s1, e.client.v6, portA), out == store.Accept)
				// s2's group accepts everything: the policy is per group.
				expect(t, "client -> s2 tcp v4", tcpErr(e.client, e.s2.v4, portA), true)
			})
		}
	}
}

func TestKernelRules(t *testing.T) {
	e := newEnv(t)
	in := func(id string, proto store.Protocol, action store.Policy, cidr string, from, to uint16) store.Rule {
		return rule(id, store.Inbound, proto, action, cidr, from, to)
	}
	type probe struct {
		what string
		err  func() error
		pass bool
	}
	tcp4 := func(port int, pass bool) probe {
		return probe{fmt.Sprintf("tcp v4 %d", port), func() error { return tcpErr(e.client, e.s1.v4, port) }, pass}
	}
	tcp6 := func(port int, pass bool) probe {
		return probe{fmt.Sprintf("tcp v6 %d", port), func() error { return tcpErr(e.client, e.s1.v6, port) }, pass}
	}
	udp4 := func(pass bool) probe {
		return probe{"udp v4", func() error { return udpErr(e.client, e.s1.v4, portUDP) }, pass}
	}
	udp6 := func(pass bool) probe {
		return probe{"udp v6", func() error { return udpErr(e.client, e.s1.v6, portUDP) }, pass}
	}
	ping4 := func(pass bool) probe {
		return probe{"ping v4", func() error { return pingErr(e.client, e.s1.v4) }, pass}
	}
	ping6 := func(pass bool) probe {
		return probe{"ping v6", func() error { return pingErr(e.client, e.s1.v6) }, pass}
	}

	// s1's group: stateful, inbound drop, outbound accept, plus the rules.
	tests := []struct {
		name   string
		rules  []store.Rule
		probes []probe
	}{
		{
			// meta nfproto ipv4 tcp dport 8080 counter accept
			name:   "accept one port, IPv4 only",
			rules:  []store.Rule{in("r1", store.TCP, store.Accept, "0.0.0.0/0", portA, 0)},
			probes: []probe{tcp4(portA, true), tcp4(portB, false), tcp6(portA, false), udp4(false)},
		},
		{
			// ip saddr 10.99.0.0/24 tcp dport 8080 counter drop
			// meta nfproto ipv4 tcp dport 8080 counter accept
			name: "first match wins: drop first",
			rules: []store.Rule{
				in("r1", store.TCP, store.Drop, "10.99.0.0/24", portA, 0),
				in("r2", store.TCP, store.Accept, "0.0.0.0/0", portA, 0),
			},
			probes: []probe{tcp4(portA, false)},
		},
		{
			// the same two rules, reordered: the accept now matches first
			name: "first match wins: reordered",
			rules: []store.Rule{
				in("r2", store.TCP, store.Accept, "0.0.0.0/0", portA, 0),
				in("r1", store.TCP, store.Drop, "10.99.0.0/24", portA, 0),
			},
			probes: []probe{tcp4(portA, true)},
		},
		{
			// meta nfproto ipv6 tcp dport 8080-8081 counter accept
			name:   "port range, IPv6",
			rules:  []store.Rule{in("r1", store.TCP, store.Accept, "::/0", portA, portB)},
			probes: []probe{tcp6(portA, true), tcp6(portB, true), tcp4(portA, false)},
		},
		{
			// ip saddr 10.99.0.2 udp dport 5353 counter accept
			name:   "udp single address",
			rules:  []store.Rule{in("r1", store.UDP, store.Accept, "10.99.0.2/32", portUDP, 0)},
			probes: []probe{udp4(true), udp6(false), tcp4(portA, false)},
		},
		{
			// ip6 saddr fd99::/16 udp dport 5353 counter accept
			name:   "udp IPv6 range",
			rules:  []store.Rule{in("r1", store.UDP, store.Accept, "fd99::/16", portUDP, 0)},
			probes: []probe{udp6(true), udp4(false)},
		},
		{
			// ip saddr 10.99.0.0/24 meta l4proto icmp counter accept
			name:   "icmp IPv4",
			rules:  []store.Rule{in("r1", store.ICMP, store.Accept, "10.99.0.0/24", 0, 0)},
			probes: []probe{ping4(true), ping6(false), tcp4(portA, false)},
		},
		{
			// ip6 saddr fd99::/16 meta l4proto ipv6-icmp counter accept
			name:   "icmp IPv6",
			rules:  []store.Rule{in("r1", store.ICMP, store.Accept, "fd99::/16", 0, 0)},
			probes: []probe{ping6(true), ping4(false)},
		},
		{
			// ip saddr 10.99.0.0/24 counter accept
			name:   "any protocol",
			rules:  []store.Rule{in("r1", store.ANY, store.Accept, "10.99.0.0/24", 0, 0)},
			probes: []probe{tcp4(portA, true), tcp4(portB, true), udp4(true), ping4(true), tcp6(portA, false)},
		},
		{
			// ip saddr 10.99.5.0/24 counter accept — not the client's network
			name:   "range that does not match",
			rules:  []store.Rule{in("r1", store.ANY, store.Accept, "10.99.5.0/24", 0, 0)},
			probes: []probe{tcp4(portA, false), ping4(false)},
		},
		{
			// ip saddr 10.99.0.0/24 ip daddr 10.99.1.99 counter accept — other destination
			name: "dest ip range narrows",
			rules: []store.Rule{func() store.Rule {
				r := in("r1", store.ANY, store.Accept, "10.99.0.0/24", 0, 0)
				r.DestIPRange = netip.MustParsePrefix("10.99.1.99/32")
				return r
			}()},
			probes: []probe{tcp4(portA, false)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.apply(t, oneGroup(group(gA, true, store.Drop, store.Accept, false), tt.rules...))
			for _, p := range tt.probes {
				expect(t, p.what, p.err(), p.pass)
			}
		})
	}

	t.Run("outbound drop rule before accept default", func(t *testing.T) {
		// chain sg_a_out { ... ip daddr 10.99.0.2 tcp dport 8081 counter drop; counter accept }
		e.apply(t, oneGroup(group(gA, true, store.Accept, store.Accept, false),
			rule("o1", store.Outbound, store.TCP, store.Drop, "10.99.0.2/32", portB, 0)))
		expect(t, "s1 -> client 8081", tcpErr(e.s1, e.client.v4, portB), false)
		expect(t, "s1 -> client 8080", tcpErr(e.s1, e.client.v4, portA), true)
		expect(t, "s1 -> client v6 8081", tcpErr(e.s1, e.client.v6, portB), true)
	})
}

func TestKernelStatefulAndStateless(t *testing.T) {
	e := newEnv(t)
	// s1 opens a connection to the client; the reply comes back inbound,
	// where s1's group drops by default.
	e.apply(t, oneGroup(group(gA, true, store.Drop, store.Accept, false)))
	expect(t, "stateful: reply to s1's connection", tcpErr(e.s1, e.client.v4, portA), true)
	expect(t, "stateful: reply v6", tcpErr(e.s1, e.client.v6, portA), true)
	expect(t, "stateful: reply udp", udpErr(e.s1, e.client.v4, portUDP), true)

	e.apply(t, oneGroup(group(gA, false, store.Drop, store.Accept, false)))
	expect(t, "stateless: reply dropped", tcpErr(e.s1, e.client.v4, portA), false)
	expect(t, "stateless: reply udp dropped", udpErr(e.s1, e.client.v4, portUDP), false)

	// ip saddr 10.99.0.0/24 tcp dport 32768-60999 counter accept: the
	// replies reach s1's ephemeral ports (ip_local_port_range).
	e.apply(t, oneGroup(group(gA, false, store.Drop, store.Accept, false),
		rule("ret", store.Inbound, store.TCP, store.Accept, "10.99.0.0/24", 32768, 60999)))
	expect(t, "stateless: reply allowed by a rule", tcpErr(e.s1, e.client.v4, portA), true)
	expect(t, "stateless: v6 reply still dropped", tcpErr(e.s1, e.client.v6, portA), false)
}

func TestKernelSMTP(t *testing.T) {
	e := newEnv(t)
	// the six SMTP drop rules, before any rule, even an accept
	e.apply(t, oneGroup(group(gA, true, store.Accept, store.Accept, true),
		rule("smtp-ok", store.Outbound, store.TCP, store.Accept, "0.0.0.0/0", 25, 0)))
	for _, p := range store.SMTPPorts {
		expect(t, fmt.Sprintf("blocked: s1 -> client:%d v4", p), tcpErr(e.s1, e.client.v4, int(p)), false)
		expect(t, fmt.Sprintf("blocked: s1 -> client:%d v6", p), tcpErr(e.s1, e.client.v6, int(p)), false)
	}
	expect(t, "blocked: other port passes", tcpErr(e.s1, e.client.v4, portA), true)
	// Inbound SMTP is not concerned.
	serveTCP(t, e.s1, 25)
	expect(t, "blocked: inbound 25 passes", tcpErr(e.client, e.s1.v4, 25), true)

	e.apply(t, oneGroup(group(gA, true, store.Accept, store.Accept, false)))
	for _, p := range store.SMTPPorts {
		expect(t, fmt.Sprintf("enabled: s1 -> client:%d v4", p), tcpErr(e.s1, e.client.v4, int(p)), true)
		expect(t, fmt.Sprintf("enabled: s1 -> client:%d v6", p), tcpErr(e.s1, e.client.v6, int(p)), true)
	}
}

func TestKernelServerToServer(t *testing.T) {
	e := newEnv(t)
	a := group(gA, true, store.Drop, store.Accept, false)
	b := group(gB, true, store.Drop, store.Accept, false)
	servers := []store.Server{server("s1", gA, "vs1"), server("s2", gB, "vs2")}
	// B accepts 8080 from s1's network; A (the sender) lets everything out.
	bRules := []store.Rule{rule("b-in", store.Inbound, store.TCP, store.Accept, "10.99.1.0/24", portA, 0)}
	e.apply(t, snapshot(1, []store.Group{a, b}, map[string][]store.Rule{gB: bRules}, servers...))
	expect(t, "s1 -> s2:8080 (B inbound accepts)", tcpErr(e.s1, e.s2.v4, portA), true)
	expect(t, "s1 -> s2:8081 (B inbound drops)", tcpErr(e.s1, e.s2.v4, portB), false)
	expect(t, "s2 -> s1:8080 (A inbound drops)", tcpErr(e.s2, e.s1.v4, portA), false)

	ctr, err := e.b.Counters(context.Background(), e.prev.Groups[1].In.Name)
	if err != nil {
		t.Fatal(err)
	}
	if ctr["b-in"].Packets == 0 || ctr["b-in"].Bytes == 0 || ctr[TagDefaultIn].Packets == 0 {
		t.Errorf("counters of B inbound = %+v, want b-in and default_in counted", ctr)
	}

	// The sender's outbound group now drops it before B sees it.
	aRules := []store.Rule{rule("a-out", store.Outbound, store.TCP, store.Drop, "10.99.2.0/24", portA, 0)}
	e.apply(t, snapshot(2, []store.Group{a, b}, map[string][]store.Rule{gA: aRules, gB: bRules}, servers...))
	expect(t, "s1 -> s2:8080 (A outbound drops)", tcpErr(e.s1, e.s2.v4, portA), false)
	ctr, err = e.b.Counters(context.Background(), e.prev.Groups[0].Out.Name)
	if err != nil {
		t.Fatal(err)
	}
	if ctr["a-out"].Packets == 0 {
		t.Errorf("counters of A outbound = %+v, want a-out counted", ctr)
	}
}

func TestKernelMoveServer(t *testing.T) {
	e := newEnv(t)
	a := group(gA, true, store.Drop, store.Accept, false)
	b := group(gB, true, store.Accept, store.Accept, false)
	e.apply(t, snapshot(1, []store.Group{a, b}, nil, server("s1", gA, "vs1"), server("s2", gA, "vs2")))
	expect(t, "s1 in A", tcpErr(e.client, e.s1.v4, portA), false)
	expect(t, "s2 in A", tcpErr(e.client, e.s2.v4, portA), false)
	// Only the map elements of vs1 change: "vs1" : jump sg_b_in
	e.apply(t, snapshot(2, []store.Group{a, b}, nil, server("s1", gB, "vs1"), server("s2", gA, "vs2")))
	expect(t, "s1 moved to B", tcpErr(e.client, e.s1.v4, portA), true)
	expect(t, "s1 moved to B, v6", tcpErr(e.client, e.s1.v6, portA), true)
	expect(t, "s2 still in A", tcpErr(e.client, e.s2.v4, portA), false)
	// Unregistered: no element, nothing enforced for vs1 any more.
	e.apply(t, snapshot(3, []store.Group{a, b}, nil, server("s2", gA, "vs2")))
	expect(t, "s1 without server", tcpErr(e.client, e.s1.v4, portA), true)
}

func TestKernelLocalServer(t *testing.T) {
	e := newEnv(t)
	l := group(gC, true, store.Drop, store.Drop, false)
	local := store.Server{ID: "host", Local: true, SecurityGroup: store.ServerRef{ID: gC}}
	snap := snapshot(1, []store.Group{l, group(gB, true, store.Accept, store.Accept, false)},
		map[string][]store.Rule{gC: {rule("ssh", store.Inbound, store.TCP, store.Accept, "10.99.0.0/24", portL, 0)}},
		local, server("s2", gB, "vs2"))
	e.apply(t, snap)
	// chain host_in { iifname "lo" accept; jump sg_c_in }
	expect(t, "client -> router:2222 (rule)", tcpErr(e.client, e.router.v4, portL), true)
	expect(t, "client -> router:2223 (default drop)", tcpErr(e.client, e.router.v4, portL2), false)
	expect(t, "client -> router:2222 v6 (IPv4 rule)", tcpErr(e.client, e.router.v6, portL), false)
	expect(t, "ping router", pingErr(e.client, e.router.v4), false)
	// chain host_out { oifname "lo" accept; jump sg_c_out }
	expect(t, "router -> client (outbound default drop)", tcpErr(e.router, e.client.v4, portA), false)
	expect(t, "router -> itself over lo", tcpErr(e.router, "127.0.0.1", portL2), true)
	// Forwarded traffic is not the host's: s2's group applies.
	expect(t, "client -> s2 (forwarded)", tcpErr(e.client, e.s2.v4, portA), true)
}
