//go:build linux

package enforcer

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/store"
)

// richSnapshot exercises every construct the compiler emits: group A logs
// its default drop, its SMTP rows and two rules; group C logs one rule
// only, under a limit of its own.
func richSnapshot() store.Snapshot {
	withDest := rule("r-dest", store.Inbound, store.TCP, store.Accept, "10.0.0.0/8", 443, 0)
	withDest.DestIPRange = netip.MustParsePrefix("10.99.1.2/32")
	logs := func(r store.Rule) store.Rule { r.Log = true; return r }
	a := group(gA, true, store.Drop, store.Accept, true)
	a.LogDefaultDrops = true
	// Rules on an IP set and on groups: inbound, logged, outbound with a
	// local range of one family (the other family's sets left out), and
	// ICMP, which is icmp or ipv6-icmp by the set's family.
	fromSet := setRule("r-set", store.Inbound, store.TCP, store.Accept, ipsRich, 443, 0)
	fromSet.Log = true
	toSet := setRule("r-set-out", store.Outbound, store.UDP, store.Drop, ipsRich, 53, 0)
	toSet.DestIPRange = netip.MustParsePrefix("10.99.1.0/24")
	fromGroup := groupRule("r-grp", store.Inbound, store.ICMP, store.Accept, gB)
	fromSelf := groupRule("r-self", store.Outbound, store.ANY, store.Accept, gC)
	fromEmpty := setRule("r-empty", store.Inbound, store.ANY, store.Drop, ipsEmpty, 0, 0)
	snap := snapshot(7,
		[]store.Group{
			a,
			group(gB, false, store.Accept, store.Drop, false),
			group(gC, true, store.Drop, store.Drop, true),
		},
		map[string][]store.Rule{
			gC: {logs(rule("r-c1", store.Outbound, store.UDP, store.Accept, "::/0", 53, 0))},
			gA: {
				logs(rule("r-ssh", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", 22, 0)),
				rule("r-web6", store.Inbound, store.TCP, store.Accept, "::/0", 8000, 8080),
				rule("r-dns", store.Inbound, store.UDP, store.Drop, "192.168.0.0/16", 53, 0),
				rule("r-ping", store.Inbound, store.ICMP, store.Accept, "10.99.0.0/24", 0, 0),
				rule("r-ping6", store.Inbound, store.ICMP, store.Accept, "fd99::/16", 0, 0),
				logs(rule("r-any", store.Outbound, store.ANY, store.Drop, "203.0.113.7/32", 0, 0)),
				rule("r-any6", store.Outbound, store.ANY, store.Accept, "2001:db8::1/128", 0, 0),
				withDest,
				fromSet, toSet, fromGroup, fromSelf, fromEmpty,
			},
			gB: {rule("r-b1", store.Outbound, store.UDP, store.Accept, "0.0.0.0/0", 1000, 2000)},
		},
		server("srv-1", gA, "vs1"), server("srv-2", gB, "vs2"), server("srv-3", gA, "tap0"),
		store.Server{ID: "srv-local", Local: true, SecurityGroup: store.ServerRef{ID: gC}},
	)
	snap.IPSets = map[string][]netip.Prefix{
		// Singles and prefixes of both families, adjacent prefixes,
		// intervals open at the top of each family.
		ipsRich: prefixList("10.99.0.2/32", "10.200.0.0/25", "10.200.0.128/25", "128.0.0.0/1",
			"fd99::2/128", "fd99:1::/64", "fd99:2::/63", "ff00::/8"),
		ipsEmpty: {},
	}
	snap.Members = map[string][]netip.Addr{
		gB: {netip.MustParseAddr("10.99.2.2"), netip.MustParseAddr("fd99:2::2")},
		gC: {},
	}
	return snap
}

// richRuleset compiles richSnapshot with group C's log limit of its own.
func richRuleset() *Ruleset {
	c := Compiler{Log: LogConfig{Groups: map[string]LogLimit{gC: {Rate: 7, Burst: 3}}}}
	return c.Compile(richSnapshot())
}

// counterRe matches the counts of an anonymous counter or of a counter
// object.
var counterRe = regexp.MustCompile(`(counter )?packets \d+ bytes \d+`)

// normalise drops what legitimately differs between two loads of the same
// ruleset: counter values and the handle comments of `nft -a`.
func normalise(s string) string {
	s = counterRe.ReplaceAllString(s, "counter")
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestPreviewTextMatchesNetlink proves that the preview text is valid nft
// (nft -c -f accepts it) and that, loaded with nft -f, the kernel holds the
// same rules as after a netlink apply of the same snapshot.
func TestPreviewTextMatchesNetlink(t *testing.T) {
	requireRoot(t)
	rs := richRuleset()
	if len(rs.Errors) > 0 {
		t.Fatalf("compile errors: %v", rs.Errors)
	}

	nsNetlink, h := newNS(t, "nl")
	b, err := NewNFTables(WithNetNS(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(context.Background(), nil, rs); err != nil {
		t.Fatalf("netlink apply: %v", err)
	}

	nsText, _ := newNS(t, "tx")
	file := filepath.Join(t.TempDir(), "rampart.nft")
	if err := os.WriteFile(file, []byte(rs.Text()), 0o600); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "ip", "netns", "exec", nsText, "nft", "-c", "-f", file)
	if tableExists(nsText) {
		t.Fatal("nft -c created the table")
	}
	runCmd(t, "ip", "netns", "exec", nsText, "nft", "-f", file)

	got, want := normalise(listTable(t, nsNetlink)), normalise(listTable(t, nsText))
	if got != want {
		t.Errorf("netlink apply and preview text differ\n--- netlink:\n%s\n--- preview:\n%s\n--- text:\n%s", got, want, rs.Text())
	}
	// Loading the text again replaces the table atomically.
	runCmd(t, "ip", "netns", "exec", nsText, "nft", "-f", file)
	if again := normalise(listTable(t, nsText)); again != want {
		t.Errorf("second load differs:\n%s", again)
	}
}
