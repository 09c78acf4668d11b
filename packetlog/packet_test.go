package packetlog

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/explain"
	"github.com/rampart-fw/rampart/store"
)

// v4pkt is a 20-byte IPv4 header from 10.0.0.1 to 10.0.0.2 with the given
// protocol and fragment field, followed by l4.
func v4pkt(proto byte, frag uint16, l4 string) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	h[6], h[7] = byte(frag>>8), byte(frag)
	h[8], h[9] = 64, proto
	copy(h[12:], netip.MustParseAddr("10.0.0.1").AsSlice())
	copy(h[16:], netip.MustParseAddr("10.0.0.2").AsSlice())
	b, _ := hex.DecodeString(l4)
	return append(h, b...)
}

// v6pkt is an IPv6 header from 2001:db8::1 to 2001:db8::2 whose first next
// header is next, followed by rest (hex).
func v6pkt(next byte, rest string) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	h[6] = next
	copy(h[8:], netip.MustParseAddr("2001:db8::1").AsSlice())
	copy(h[24:], netip.MustParseAddr("2001:db8::2").AsSlice())
	b, _ := hex.DecodeString(rest)
	return append(h, b...)
}

func TestParseHeader(t *testing.T) {
	v4a, v4b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	v6a, v6b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	ports := "d431" + "0050" // 54321 -> 80
	tests := []struct {
		name    string
		packet  []byte
		want    Header
		wantErr bool
	}{
		{"IPv4 TCP", v4pkt(6, 0x4000, ports+"00000000"), Header{"TCP", v4a, 54321, v4b, 80}, false},
		{"IPv4 UDP", v4pkt(17, 0, ports+"0008"), Header{"UDP", v4a, 54321, v4b, 80}, false},
		{"IPv4 ICMP", v4pkt(1, 0, "0800"), Header{"ICMP", v4a, 0, v4b, 0}, false},
		{"IPv4 first fragment has ports", v4pkt(17, 0x2000, ports), Header{"UDP", v4a, 54321, v4b, 80}, false},
		{"IPv4 later fragment has none", v4pkt(17, 0x0010, ports), Header{"UDP", v4a, 0, v4b, 0}, false},
		{"IPv4 cut before the ports", v4pkt(6, 0, "d4"), Header{"TCP", v4a, 0, v4b, 0}, false},
		{"IPv4 with options", func() []byte {
			b := v4pkt(17, 0, "01010101"+ports)
			b[0] = 0x46 // 24-byte header: the options, then UDP
			return b
		}(), Header{"UDP", v4a, 54321, v4b, 80}, false},
		{"IPv4 other protocol", v4pkt(47, 0, ""), Header{"47", v4a, 0, v4b, 0}, false},
		{"IPv6 TCP", v6pkt(6, ports), Header{"TCP", v6a, 54321, v6b, 80}, false},
		{"IPv6 ICMPv6", v6pkt(58, "8000"), Header{"ICMP", v6a, 0, v6b, 0}, false},
		{"IPv6 hop-by-hop then destination options then UDP",
			v6pkt(0, "3c00000000000000"+"1100000000000000"+ports), Header{"UDP", v6a, 54321, v6b, 80}, false},
		{"IPv6 first fragment", v6pkt(44, "1100000100000001"+ports), Header{"UDP", v6a, 54321, v6b, 80}, false},
		{"IPv6 later fragment", v6pkt(44, "1100050000000001"+ports), Header{"UDP", v6a, 0, v6b, 0}, false},
		{"IPv6 cut within an extension header", v6pkt(0, "11"), Header{"0", v6a, 0, v6b, 0}, false},
		{"IPv4 too short", v4pkt(6, 0, "")[:19], Header{}, true},
		{"IPv6 too short", v6pkt(6, "")[:39], Header{}, true},
		{"not IP", []byte{0x50, 0, 0, 0}, Header{}, true},
		{"empty", nil, Header{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHeader(tt.packet)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(v4pkt(6, 0, "d4310050"))
	f.Add(v6pkt(0, "3c00000000000000"+"1100000000000000"+"d4310050"))
	f.Add(v6pkt(44, "1100000100000001"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err == nil && (!h.Source.IsValid() || h.Protocol == "") {
			t.Fatalf("no error, but %+v", h)
		}
	})
}

// TestEntry checks how a prefix and a packet become an entry: through the
// index (positions, SMTP rows, groups and rules whose IDs a prefix cannot
// hold) and without it (the prefix's own words).
func TestEntry(t *testing.T) {
	const gID = "95653df4-0f3c-4a7e-9d1b-6f0a2c9e8b71"
	const odd = "group with spaces"
	snap := store.Snapshot{
		Groups: []store.Group{{ID: gID}, {ID: odd}},
		Rules: map[string][]store.Rule{
			gID: {{ID: "7d0c2f3e-1111-4222-8333-944445555666", Position: 3}},
			odd: {{ID: `rule "quoted"`, Position: 1}},
		},
	}
	smtp := store.SMTPRules(gID)
	prefix := func(group string, dir store.Direction, tag string, v store.Policy) string {
		return enforcer.LogPrefix{Group: group, Direction: dir, Tag: tag, Verdict: v}.String()
	}
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	pkt := v4pkt(6, 0, "d4310050")
	tests := []struct {
		name      string
		index     *Index
		prefix    string
		group     string
		dir       store.Direction
		verdict   store.Policy
		decidedBy explain.RuleRef
	}{
		{"rule with its position", NewIndex(snap), prefix(gID, store.Inbound, "7d0c2f3e-1111-4222-8333-944445555666", store.Accept),
			gID, store.Inbound, store.Accept, explain.RuleRef{Kind: explain.KindRule, RuleID: "7d0c2f3e-1111-4222-8333-944445555666", Position: 3}},
		{"rule unknown to the index", NewIndex(snap), prefix(gID, store.Inbound, "r-new", store.Drop),
			gID, store.Inbound, store.Drop, explain.RuleRef{Kind: explain.KindRule, RuleID: "r-new"}},
		{"no index", nil, prefix(gID, store.Outbound, "r-1", store.Drop),
			gID, store.Outbound, store.Drop, explain.RuleRef{Kind: explain.KindRule, RuleID: "r-1"}},
		{"default policy", nil, prefix(gID, store.Inbound, enforcer.TagDefaultIn, store.Drop),
			gID, store.Inbound, store.Drop, explain.RuleRef{Kind: explain.KindDefaultPolicy}},
		{"SMTP row", NewIndex(snap), prefix(gID, store.Outbound, smtp[4].ID, store.Drop),
			gID, store.Outbound, store.Drop, explain.RuleRef{Kind: explain.KindSMTP, RuleID: smtp[4].ID, Position: 5}},
		{"stateful", nil, prefix(gID, store.Inbound, enforcer.TagEstablishedIn, store.Accept),
			gID, store.Inbound, store.Accept, explain.RuleRef{Kind: explain.KindStateful}},
		{"IDs a prefix cannot hold, through the index", NewIndex(snap), prefix(odd, store.Inbound, `rule "quoted"`, store.Accept),
			odd, store.Inbound, store.Accept, explain.RuleRef{Kind: explain.KindRule, RuleID: `rule "quoted"`, Position: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.prefix) > enforcer.LogPrefixMax || strings.ContainsAny(tt.prefix, "\" ") {
				t.Fatalf("prefix %q: too long or not plain", tt.prefix)
			}
			e, err := tt.index.entry(tt.prefix, pkt, at)
			if err != nil {
				t.Fatal(err)
			}
			want := Entry{Time: at, Direction: tt.dir, Protocol: "TCP", Source: netip.MustParseAddr("10.0.0.1"), SourcePort: 54321,
				Destination: netip.MustParseAddr("10.0.0.2"), DestinationPort: 80, Verdict: tt.verdict, GroupID: tt.group, DecidedBy: tt.decidedBy}
			if e != want {
				t.Errorf("got  %+v\nwant %+v", e, want)
			}
		})
	}
	for _, bad := range []string{"", "rampart:", "rampart:g:in:t", "rampart:g:up:t:drop", "rampart:g:in:t:reject", "other:g:in:t:drop", "rampart::in:t:drop"} {
		if _, err := (*Index)(nil).entry(bad, pkt, at); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
}
