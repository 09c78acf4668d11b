package explain

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

func TestEvaluate(t *testing.T) {
	// Inbound drop by default, outbound accept, stateful, SMTP blocked.
	g := build(t, group(gA, true, store.Drop, store.Accept, true),
		// 1: ip saddr 10.0.0.0/8 tcp dport 22 accept
		in("ssh", store.TCP, store.Accept, "10.0.0.0/8", 22, 0),
		// 2: ip6 saddr 2001:db8::/32 tcp dport 8000-8080 accept
		in("web6", store.TCP, store.Accept, "2001:db8::/32", 8000, 8080),
		// 3: ip saddr 192.0.2.0/24 ip daddr 198.51.100.7 udp dport 53 accept
		dest(in("dns", store.UDP, store.Accept, "192.0.2.0/24", 53, 0), "198.51.100.7/32"),
		// 4: ip6 saddr ::/0 meta l4proto ipv6-icmp accept
		in("ping6", store.ICMP, store.Accept, "::/0", 0, 0),
		// 5: ip saddr 203.0.113.0/24 accept (every protocol)
		in("any", store.ANY, store.Accept, "203.0.113.0/24", 0, 0),
		// 6: ip daddr 198.51.100.0/24 tcp dport 443 drop
		out("no-tls", store.TCP, store.Drop, "198.51.100.0/24", 443, 0),
	)
	tests := []struct {
		name    string
		p       Packet
		verdict store.Policy
		by      RuleRef
	}{
		{"rule, single port", Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("10.1.2.3"), Port: 22},
			store.Accept, RuleRef{KindRule, "ssh", 1}},
		{"single port, next port", Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("10.1.2.3"), Port: 23},
			store.Drop, RuleRef{Kind: KindDefaultPolicy}},
		{"range, low end", Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("2001:db8::1"), Port: 8000},
			store.Accept, RuleRef{KindRule, "web6", 2}},
		{"range, high end", Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("2001:db8::1"), Port: 8080},
			store.Accept, RuleRef{KindRule, "web6", 2}},
		{"range, beyond", Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("2001:db8::1"), Port: 8081},
			store.Drop, RuleRef{Kind: KindDefaultPolicy}},
		{"IPv6 range, outside", Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("2001:db9::1"), Port: 8000},
			store.Drop, RuleRef{Kind: KindDefaultPolicy}},
		{"local side matches", Packet{Direction: store.Inbound, Protocol: store.UDP, Remote: addr("192.0.2.1"), Local: addr("198.51.100.7"), Port: 53},
			store.Accept, RuleRef{KindRule, "dns", 3}},
		{"local side differs", Packet{Direction: store.Inbound, Protocol: store.UDP, Remote: addr("192.0.2.1"), Local: addr("198.51.100.8"), Port: 53},
			store.Drop, RuleRef{Kind: KindDefaultPolicy}},
		{"local unknown, remote decides", Packet{Direction: store.Inbound, Protocol: store.UDP, Remote: addr("192.0.3.1"), Port: 53},
			store.Drop, RuleRef{Kind: KindDefaultPolicy}},
		{"ICMP is ICMPv6 for IPv6", Packet{Direction: store.Inbound, Protocol: store.ICMP, Remote: addr("fe80::1")},
			store.Accept, RuleRef{KindRule, "ping6", 4}},
		{"ICMP over IPv4 is not ICMPv6", Packet{Direction: store.Inbound, Protocol: store.ICMP, Remote: addr("192.0.2.1")},
			store.Drop, RuleRef{Kind: KindDefaultPolicy}},
		{"ANY matches GRE", Packet{Direction: store.Inbound, Protocol: "47", Remote: addr("203.0.113.9")},
			store.Accept, RuleRef{KindRule, "any", 5}},
		{"ANY matches UDP", Packet{Direction: store.Inbound, Protocol: store.UDP, Remote: addr("203.0.113.9"), Port: 9},
			store.Accept, RuleRef{KindRule, "any", 5}},
		{"stateful return traffic", Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("192.0.2.1"), Port: 40000, State: Established},
			store.Accept, RuleRef{Kind: KindStateful}},
		{"outbound rule", Packet{Direction: store.Outbound, Protocol: store.TCP, Remote: addr("198.51.100.20"), Port: 443},
			store.Drop, RuleRef{KindRule, "no-tls", 6}},
		{"outbound default", Packet{Direction: store.Outbound, Protocol: store.TCP, Remote: addr("198.51.101.20"), Port: 443},
			store.Accept, RuleRef{Kind: KindDefaultPolicy}},
		{"SMTP IPv4", Packet{Direction: store.Outbound, Protocol: store.TCP, Remote: addr("198.51.100.20"), Port: 25},
			store.Drop, RuleRef{KindSMTP, smtpID(gA, 1), 1}},
		{"SMTP IPv6 465", Packet{Direction: store.Outbound, Protocol: store.TCP, Remote: addr("2001:db8::25"), Port: 465},
			store.Drop, RuleRef{KindSMTP, smtpID(gA, 5), 5}},
		{"SMTP over UDP is not SMTP", Packet{Direction: store.Outbound, Protocol: store.UDP, Remote: addr("2001:db8::25"), Port: 25},
			store.Accept, RuleRef{Kind: KindDefaultPolicy}},
		{"established SMTP passes the stateful rule first", Packet{Direction: store.Outbound, Protocol: store.TCP, Remote: addr("192.0.2.25"), Port: 25, State: Established},
			store.Accept, RuleRef{Kind: KindStateful}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := g.Evaluate(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tt.verdict || d.DecidedBy != tt.by {
				t.Errorf("got %s by %+v, want %s by %+v", d.Verdict, d.DecidedBy, tt.verdict, tt.by)
			}
			last := d.Trace[len(d.Trace)-1]
			if !last.Matched || last.RuleRef != d.DecidedBy {
				t.Errorf("last step = %+v, want the deciding rule, matched", last)
			}
			for _, st := range d.Trace[:len(d.Trace)-1] {
				if st.Matched || st.Mismatch == "" || st.Reason == "" {
					t.Errorf("step %+v: want a mismatch with its reason", st)
				}
			}
		})
	}
}

func TestEvaluateTrace(t *testing.T) {
	g := build(t, group(gA, true, store.Drop, store.Accept, false),
		in("r1", store.UDP, store.Accept, "10.0.0.0/8", 53, 0),
		in("r2", store.TCP, store.Accept, "::/0", 80, 0),
		in("r3", store.TCP, store.Accept, "192.0.2.0/24", 80, 0),
		in("r4", store.TCP, store.Accept, "10.0.0.0/8", 1000, 2000),
		dest(in("r5", store.TCP, store.Accept, "10.0.0.0/8", 0, 0), "198.51.100.0/24"),
	)
	d, err := g.Evaluate(Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("10.9.9.9"), Local: addr("198.51.101.1"), Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		kind    Kind
		id      string
		matched bool
		part    Part
		reason  string
	}
	want := []step{
		{KindStateful, "", false, PartState, "a new packet; the rule matches established and related packets only"},
		{KindRule, "r1", false, PartProtocol, "a TCP packet; the rule matches UDP"},
		{KindRule, "r2", false, PartFamily, "an IPv4 packet; the rule matches IPv6 only"},
		{KindRule, "r3", false, PartRemoteIP, "10.9.9.9 is not in 192.0.2.0/24"},
		{KindRule, "r4", false, PartPort, "port 80 is not 1000-2000"},
		{KindRule, "r5", false, PartLocalIP, "198.51.101.1 is not in 198.51.100.0/24"},
		{KindDefaultPolicy, "", true, "", ""},
	}
	if len(d.Trace) != len(want) {
		t.Fatalf("trace has %d steps, want %d: %+v", len(d.Trace), len(want), d.Trace)
	}
	for i, st := range d.Trace {
		got := step{st.Kind, st.RuleID, st.Matched, st.Mismatch, st.Reason}
		if got != want[i] {
			t.Errorf("step %d = %+v, want %+v", i+1, got, want[i])
		}
	}
}

func TestEvaluateStateless(t *testing.T) {
	// Without the stateful rule, return traffic meets the rules like any
	// other packet.
	g := build(t, group(gA, false, store.Drop, store.Accept, true),
		in("ret", store.TCP, store.Accept, "0.0.0.0/0", 32768, 60999))
	for _, tt := range []struct {
		port    uint16
		verdict store.Policy
	}{{40000, store.Accept}, {22, store.Drop}} {
		d, err := g.Evaluate(Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("192.0.2.1"), Port: tt.port, State: Established})
		if err != nil {
			t.Fatal(err)
		}
		if d.Verdict != tt.verdict || d.Trace[0].Kind == KindStateful {
			t.Errorf("port %d: got %s, trace %+v; want %s and no stateful rule", tt.port, d.Verdict, d.Trace, tt.verdict)
		}
	}
	d, err := g.Evaluate(Packet{Direction: store.Outbound, Protocol: store.TCP, Remote: addr("192.0.2.1"), Port: 587, State: Established})
	if err != nil {
		t.Fatal(err)
	}
	if want := (RuleRef{KindSMTP, smtpID(gA, 3), 3}); d.DecidedBy != want {
		t.Errorf("established SMTP in a stateless group: decided by %+v, want %+v", d.DecidedBy, want)
	}
}

func TestEvaluateCompileError(t *testing.T) {
	g := group(gA, true, store.Accept, store.Accept, false)
	bad := in("bad", store.TCP, store.Accept, "0.0.0.0/0", 90, 0)
	rules := positioned(gA, []store.Rule{bad})
	// A row the store could not read: the group fails closed.
	rs := enforcer.Compile(store.Snapshot{Groups: []store.Group{g}, Rules: map[string][]store.Rule{gA: rules},
		Unreadable: map[string][]string{gA: {"rule bad: dest_port_to: unreadable"}}})
	if rs.Errors[gA] == nil {
		t.Fatal("want a compile error")
	}
	gc, _ := rs.Group(gA)
	eg, err := NewGroup(g, rules, gc)
	if err != nil {
		t.Fatal(err)
	}
	d, err := eg.Evaluate(Packet{Direction: store.Outbound, Protocol: store.UDP, Remote: addr("192.0.2.1"), Port: 53})
	if err != nil {
		t.Fatal(err)
	}
	if d.Verdict != store.Drop || d.DecidedBy.Kind != KindCompileError {
		t.Errorf("got %s by %+v, want drop by compile_error", d.Verdict, d.DecidedBy)
	}
}

// fieldOf returns the single field an invalid-argument error names.
func fieldOf(t *testing.T, err error) string {
	t.Helper()
	var se *store.Error
	if !errors.As(err, &se) || se.Code != store.CodeInvalid || len(se.Fields) == 0 {
		t.Fatalf("error %v: want a *store.Error of code invalid with fields", err)
	}
	var names []string
	for _, f := range se.Fields {
		names = append(names, f.Field)
	}
	return strings.Join(names, ",")
}

func TestEvaluateInvalid(t *testing.T) {
	g := build(t, group(gA, true, store.Drop, store.Accept, false),
		dest(in("r1", store.TCP, store.Accept, "10.0.0.0/8", 22, 0), "192.0.2.0/24"))
	ok := Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("10.0.0.1"), Local: addr("192.0.2.1"), Port: 22}
	if _, err := g.Evaluate(ok); err != nil {
		t.Fatalf("valid packet: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(p *Packet)
		field string
	}{
		{"no direction", func(p *Packet) { p.Direction = "" }, "direction"},
		{"bad direction", func(p *Packet) { p.Direction = "sideways" }, "direction"},
		{"ANY is not a packet protocol", func(p *Packet) { p.Protocol = store.ANY }, "protocol"},
		{"unknown protocol", func(p *Packet) { p.Protocol = "SCTP" }, "protocol"},
		{"protocol number out of range", func(p *Packet) { p.Protocol = "300" }, "protocol"},
		{"protocol 6 is TCP", func(p *Packet) { p.Protocol = "6" }, "protocol"},
		{"protocol 1 is ICMP over IPv4", func(p *Packet) { p.Protocol, p.Port = "1", 0 }, "protocol"},
		{"no remote", func(p *Packet) { p.Remote = netip.Addr{} }, "remote_ip"},
		{"mapped remote", func(p *Packet) { p.Remote = addr("::ffff:10.0.0.1"); p.Local = netip.Addr{} }, "remote_ip"},
		{"zoned remote", func(p *Packet) { p.Remote = addr("fe80::1%eth0"); p.Local = netip.Addr{} }, "remote_ip"},
		{"mixed families", func(p *Packet) { p.Local = addr("2001:db8::1") }, "local_ip"},
		{"port with ICMP", func(p *Packet) { p.Protocol = store.ICMP }, "dest_port"},
		{"bad state", func(p *Packet) { p.State = "related" }, "state"},
		{"local needed", func(p *Packet) { p.Local = netip.Addr{} }, "local_ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.edit(&p)
			_, err := g.Evaluate(p)
			if got := fieldOf(t, err); got != tt.field {
				t.Errorf("field = %s, want %s (%v)", got, tt.field, err)
			}
		})
	}
}

func TestParsePacket(t *testing.T) {
	port := func(n int) *int { return &n }
	tests := []struct {
		name   string
		in     PacketInput
		want   Packet
		fields string
	}{
		{"TCP", PacketInput{Direction: "inbound", Protocol: "TCP", RemoteIP: "192.0.2.1", DestPort: port(443)},
			Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("192.0.2.1"), Port: 443}, ""},
		{"port 0", PacketInput{Direction: "inbound", Protocol: "UDP", RemoteIP: "192.0.2.1", DestPort: port(0), State: "established"},
			Packet{Direction: store.Inbound, Protocol: store.UDP, Remote: addr("192.0.2.1"), State: Established}, ""},
		{"ICMPv6", PacketInput{Direction: "outbound", Protocol: "ICMP", RemoteIP: "2001:db8::1", LocalIP: "2001:db8::2"},
			Packet{Direction: store.Outbound, Protocol: store.ICMP, Remote: addr("2001:db8::1"), Local: addr("2001:db8::2")}, ""},
		{"GRE", PacketInput{Direction: "outbound", Protocol: "47", RemoteIP: "192.0.2.1"},
			Packet{Direction: store.Outbound, Protocol: "47", Remote: addr("192.0.2.1")}, ""},
		{"everything wrong", PacketInput{Direction: "up", Protocol: "TCP", RemoteIP: "192.0.2", LocalIP: "x", DestPort: port(70000), State: "old"},
			Packet{}, "direction,remote_ip,local_ip,dest_port,state"},
		{"port missing", PacketInput{Direction: "inbound", Protocol: "UDP", RemoteIP: "192.0.2.1"}, Packet{}, "dest_port"},
		{"port with ICMP", PacketInput{Direction: "inbound", Protocol: "ICMP", RemoteIP: "192.0.2.1", DestPort: port(1)}, Packet{}, "dest_port"},
		{"remote missing", PacketInput{Direction: "inbound", Protocol: "ICMP"}, Packet{}, "remote_ip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePacket(tt.in)
			if tt.fields != "" {
				if f := fieldOf(t, err); f != tt.fields {
					t.Errorf("fields = %s, want %s (%v)", f, tt.fields, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPacketJSON(t *testing.T) {
	for _, tt := range []struct {
		p    Packet
		want string
	}{
		{Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("192.0.2.1"), Port: 0},
			`{"direction":"inbound","protocol":"TCP","remote_ip":"192.0.2.1","dest_port":0,"state":"new"}`},
		{Packet{Direction: store.Outbound, Protocol: store.ICMP, Remote: addr("2001:db8::1"), Local: addr("2001:db8::2"), State: Established},
			`{"direction":"outbound","protocol":"ICMP","remote_ip":"2001:db8::1","local_ip":"2001:db8::2","state":"established"}`},
	} {
		b, err := json.Marshal(tt.p)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(b); got != tt.want {
			t.Errorf("got %s, want %s", got, tt.want)
		}
	}
}

func TestEvaluateServer(t *testing.T) {
	g := build(t, group(gA, true, store.Drop, store.Accept, false),
		dest(in("web", store.TCP, store.Accept, "0.0.0.0/0", 80, 0), "192.0.2.0/25"),
		in("ssh", store.TCP, store.Accept, "10.0.0.0/8", 22, 0))
	srv := func(iface string, local bool, addrs ...string) store.Server {
		s := store.Server{ID: "s", Name: "s", Interface: iface, Local: local, SecurityGroup: store.ServerRef{ID: gA}}
		for _, a := range addrs {
			s.Addresses = append(s.Addresses, addr(a))
		}
		return s
	}
	web := Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("198.51.100.1"), Port: 80}
	ssh := Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("10.0.0.1"), Port: 22}
	tests := []struct {
		name    string
		s       store.Server
		p       Packet
		verdict store.Policy
		kind    Kind
		field   string // error naming it, if set
	}{
		{"not enforced", srv("", false, "192.0.2.1"), web, store.Accept, KindNotEnforced, ""},
		{"local server", srv("", true, "192.0.2.1"), web, store.Accept, KindRule, ""},
		{"one address", srv("vs1", false, "192.0.2.1", "2001:db8::1"), web, store.Accept, KindRule, ""},
		{"one address, outside", srv("vs1", false, "192.0.2.200"), web, store.Drop, KindDefaultPolicy, ""},
		{"addresses agree", srv("vs1", false, "192.0.2.1", "192.0.2.2"), web, store.Accept, KindRule, ""},
		{"addresses disagree", srv("vs1", false, "192.0.2.1", "192.0.2.200"), web, "", "", "local_ip"},
		{"no address of the family", srv("vs1", false, "2001:db8::1"), web, "", "", "local_ip"},
		{"local not needed", srv("vs1", false), ssh, store.Accept, KindRule, ""},
		{"local server to itself", srv("", true, "192.0.2.1"),
			Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr("192.0.2.1"), Port: 9}, store.Accept, KindNotEnforced, ""},
		{"local server, loopback", srv("", true),
			Packet{Direction: store.Outbound, Protocol: store.UDP, Remote: addr("::1"), Port: 9}, store.Accept, KindNotEnforced, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := g.EvaluateServer(tt.s, tt.p)
			if tt.field != "" {
				if got := fieldOf(t, err); got != tt.field {
					t.Errorf("field = %s, want %s", got, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tt.verdict || d.DecidedBy.Kind != tt.kind {
				t.Errorf("got %s by %+v, want %s by %s", d.Verdict, d.DecidedBy, tt.verdict, tt.kind)
			}
		})
	}
	other := srv("vs1", false)
	other.SecurityGroup.ID = gB
	if _, err := g.EvaluateServer(other, web); err == nil || store.ErrorCode(err) != "" {
		t.Errorf("server of another group: err = %v, want an internal error", err)
	}
}

func TestBetween(t *testing.T) {
	a := build(t, group(gA, true, store.Accept, store.Accept, false),
		out("no-db", store.TCP, store.Drop, "10.0.2.0/24", 5432, 0))
	b := build(t, group(gB, true, store.Drop, store.Accept, false),
		in("web", store.TCP, store.Accept, "10.0.1.0/24", 80, 0),
		in("db", store.TCP, store.Accept, "10.0.0.0/8", 5432, 0))
	srv := func(id, gid, iface string, local bool, addrs ...string) store.Server {
		s := store.Server{ID: id, Name: id, Interface: iface, Local: local, SecurityGroup: store.ServerRef{ID: gid}}
		for _, x := range addrs {
			s.Addresses = append(s.Addresses, addr(x))
		}
		return s
	}
	s1 := srv("s1", gA, "vs1", false, "2001:db8:1::1", "10.0.1.1")
	s2 := srv("s2", gB, "vs2", false, "10.0.2.1", "2001:db8:2::1")
	host := srv("host", gB, "", true, "10.0.2.9")
	idle := srv("idle", gA, "", false, "10.0.1.5")
	tcp := func(port uint16) Flow { return Flow{Protocol: store.TCP, Port: port} }
	type side struct {
		verdict store.Policy
		by      Kind
	}
	tests := []struct {
		name          string
		src, dst      store.Server
		sg, dg        *Group
		f             Flow
		verdict       store.Policy
		outbound, inb side
	}{
		{"both accept", s1, s2, a, b, tcp(80), store.Accept, side{store.Accept, KindDefaultPolicy}, side{store.Accept, KindRule}},
		{"receiver drops", s1, s2, a, b, tcp(81), store.Drop, side{store.Accept, KindDefaultPolicy}, side{store.Drop, KindDefaultPolicy}},
		{"sender drops", s1, s2, a, b, tcp(5432), store.Drop, side{store.Drop, KindRule}, side{store.Accept, KindRule}},
		{"IPv6 by choice", s1, s2, a, b, Flow{Protocol: store.TCP, Port: 80, Source: addr("2001:db8:1::1")},
			store.Drop, side{store.Accept, KindDefaultPolicy}, side{store.Drop, KindDefaultPolicy}},
		{"to this host: not forwarded", s1, host, a, b, tcp(5432), store.Accept,
			side{store.Accept, KindNotEnforced}, side{store.Accept, KindRule}},
		{"from an unenforced server", idle, s2, a, b, tcp(80), store.Accept,
			side{store.Accept, KindNotEnforced}, side{store.Accept, KindRule}},
		{"to itself", s2, s2, b, b, tcp(22), store.Accept, side{store.Accept, KindNotEnforced}, side{store.Accept, KindNotEnforced}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Between(tt.src, tt.sg, tt.dst, tt.dg, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if got := (side{p.Outbound.Verdict, p.Outbound.DecidedBy.Kind}); got != tt.outbound {
				t.Errorf("outbound = %+v, want %+v", got, tt.outbound)
			}
			if got := (side{p.Inbound.Verdict, p.Inbound.DecidedBy.Kind}); got != tt.inb {
				t.Errorf("inbound = %+v, want %+v", got, tt.inb)
			}
			if p.Verdict != tt.verdict {
				t.Errorf("verdict = %s, want %s", p.Verdict, tt.verdict)
			}
		})
	}

	// Addresses default to the first of a family both servers have.
	p, err := Between(s1, a, s2, b, tcp(80))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Inbound.Packet.Remote, addr("10.0.1.1"); got != want {
		t.Errorf("source = %s, want %s", got, want)
	}
	if got, want := p.Outbound.Packet.Remote, addr("10.0.2.1"); got != want {
		t.Errorf("dest = %s, want %s", got, want)
	}
	for _, tt := range []struct {
		name  string
		dst   store.Server
		f     Flow
		field string
	}{
		{"no IPv6 address", host, Flow{Protocol: store.TCP, Port: 1, Source: addr("2001:db8:1::1")}, "dest_ip"},
		{"mixed families", s2, Flow{Protocol: store.TCP, Port: 1, Source: addr("10.0.1.1"), Dest: addr("2001:db8:2::1")}, "dest_ip"},
		{"port with ICMP", s2, Flow{Protocol: store.ICMP, Port: 1}, "dest_port"},
		{"bad protocol", s2, Flow{Protocol: "ANY"}, "protocol"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dg := b
			_, err := Between(s1, a, tt.dst, dg, tt.f)
			if got := fieldOf(t, err); got != tt.field {
				t.Errorf("field = %s, want %s (%v)", got, tt.field, err)
			}
		})
	}
}
