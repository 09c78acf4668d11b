package store

import "testing"

func FuzzParseIPRange(f *testing.F) {
	for _, s := range []string{"8.8.8.8", "10.1.2.3/8", "0.0.0.0/0", "::/0", "2001:db8::1/64", "fe80::1%eth0",
		"::ffff:1.2.3.4", "1.2.3.4/33", "", " 10.0.0.0/8 ", "1.2.3", "::/129"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := ParseIPRange(s)
		if !ok {
			return
		}
		if p != p.Masked() {
			t.Fatalf("%q parsed to %s with host bits set", s, p)
		}
		// What we answer parses back to the same range.
		again, ok := ParseIPRange(FormatIPRange(p))
		if !ok || again != p {
			t.Fatalf("%q: %s formats as %q which parses to %s", s, p, FormatIPRange(p), again)
		}
	})
}

func FuzzBuildRule(f *testing.F) {
	f.Add("inbound", "TCP", "accept", "0.0.0.0/0", "", 22, 0, 0)
	f.Add("outbound", "UDP", "drop", "10.0.0.0/8", "192.0.2.1", 1, 65535, 3)
	f.Add("inbound", "ICMP", "accept", "::/0", "", 0, 0, 0)
	f.Add("sideways", "SCTP", "reject", "x", "y", -1, 70000, -5)
	f.Fuzz(func(t *testing.T, dir, proto, action, ipRange, dest string, from, to, pos int) {
		var fe fieldErrors
		r := buildRule(&fe, "", RuleInput{Direction: Direction(dir), Protocol: Protocol(proto), Action: Policy(action),
			IPRange: ipRange, DestIPRange: &dest, DestPortFrom: &from, DestPortTo: &to, Position: pos})
		if len(fe) > 0 {
			for _, e := range fe {
				if e.Field == "" || e.Message == "" {
					t.Fatalf("field error without a name or message: %+v", e)
				}
			}
			return
		}
		// Every accepted rule holds the domain's invariants.
		switch {
		case r.Direction != Inbound && r.Direction != Outbound,
			r.Action != Accept && r.Action != Drop,
			r.Protocol != TCP && r.Protocol != UDP && r.Protocol != ICMP && r.Protocol != ANY:
			t.Fatalf("accepted an unknown enum: %+v", r)
		case !r.IPRange.IsValid() || r.IPRange != r.IPRange.Masked():
			t.Fatalf("accepted range %v", r.IPRange)
		case (r.DestPortFrom != 0 || r.DestPortTo != 0) && !r.Protocol.HasPorts():
			t.Fatalf("ports on %s", r.Protocol)
		case r.DestPortTo != 0 && r.DestPortTo <= r.DestPortFrom:
			t.Fatalf("port range %d-%d", r.DestPortFrom, r.DestPortTo)
		case r.DestPortTo != 0 && r.DestPortFrom == 0:
			t.Fatalf("range without a first port")
		case r.DestIPRange.IsValid() && r.DestIPRange.Addr().Is4() != r.IPRange.Addr().Is4():
			t.Fatalf("mixed families")
		}
	})
}
