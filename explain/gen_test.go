package explain

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/rampart-fw/rampart/store"
)

// Random groups and packets for the property and differential tests. The
// addresses cluster around a few anchors, with prefix lengths from /0 to a
// single address, so that ranges nest and overlap often; ports cluster
// around the SMTP ports and a few others, so that rules and SMTP rows meet.

// The address plan. Servers own the local blocks (the differential test
// routes them to their namespaces); remote anchors lie outside them but
// include them, so that rules between servers are generated too.
var (
	localBlocks = map[string][2]netip.Prefix{ // server -> IPv4, IPv6 block
		"s1": {netip.MustParsePrefix("10.201.0.0/16"), netip.MustParsePrefix("2001:db8:201::/48")},
		"s2": {netip.MustParsePrefix("10.202.0.0/16"), netip.MustParsePrefix("2001:db8:202::/48")},
	}
	remoteAnchors4 = addrs("10.1.2.3", "10.1.200.9", "192.0.2.77", "198.51.100.200", "203.0.113.5",
		"172.16.5.4", "10.201.3.4", "10.202.5.6")
	remoteAnchors6 = addrs("2001:db8:1:2::3", "2001:db8:1:ff::9", "2001:db8:abcd::1", "fd12:3456::7",
		"2001:db8:201::3", "2001:db8:202::5")
	remoteBits4   = []int{0, 8, 12, 16, 20, 24, 25, 28, 30, 31, 32}
	remoteBits6   = []int{0, 16, 32, 44, 48, 56, 64, 96, 120, 127, 128}
	localAnchors4 = addrs("10.201.0.1", "10.201.3.4", "10.202.5.6", "10.202.0.9")
	localAnchors6 = addrs("2001:db8:201::1", "2001:db8:201:3::4", "2001:db8:202::9", "2001:db8:202:1::1")
	localBits4    = []int{8, 16, 24, 30, 32}
	localBits6    = []int{32, 48, 64, 126, 128}
	portAnchors   = []int{1, 22, 25, 53, 80, 443, 465, 587, 1000, 8080, 32768, 65535}
)

// Test IP sets and groups' members: singles and prefixes of both
// families near the anchors (adjacent ones too), one set of one family,
// an empty one, and members that are the servers' addresses (for
// traffic between them) or remote ones.
var (
	setMixed   = "5e700000-0000-4000-8000-000000000001"
	setV6      = "5e700000-0000-4000-8000-000000000002"
	setEmpty   = "5e700000-0000-4000-8000-000000000003"
	setWide    = "5e700000-0000-4000-8000-000000000004"
	gRemote    = "cccccccc-0000-4000-8000-000000000003"
	gNobody    = "dddddddd-0000-4000-8000-000000000004"
	testSets   = []string{setMixed, setV6, setEmpty, setWide}
	testGrps   = []string{gA, gB, gRemote, gNobody}
	testIPSets = map[string][]netip.Prefix{
		setMixed: prefixes("10.1.2.3/32", "10.1.200.0/24", "172.16.5.4/32", "192.0.2.0/25", "192.0.2.128/26",
			"203.0.113.5/32", "2001:db8:1:2::3/128", "2001:db8:abcd::/48", "2001:db8:abce::/48"),
		setV6:    prefixes("2001:db8:1:ff::9/128", "2001:db8:202::/64", "fd12:3456::/32"),
		setEmpty: {},
		setWide:  prefixes("10.0.0.0/9", "10.201.3.4/32", "10.202.0.0/16", "198.51.100.200/32", "2001:db8::/33"),
	}
	testMembers = map[string][]netip.Addr{
		gA:      addrs("10.201.0.1", "2001:db8:201::1"),
		gB:      addrs("10.202.0.1", "2001:db8:202::1"),
		gRemote: addrs("10.1.200.9", "192.0.2.77", "198.51.100.200", "2001:db8:1:ff::9", "fd12:3456::7"),
		gNobody: {},
	}
)

// remoteOf returns the remote range of r, or for a rule on a set or a
// group one of its prefixes (an anchor's when it holds none), for packets
// near its edges.
func remoteOf(rng *rand.Rand, r store.Rule) netip.Prefix {
	var list []netip.Prefix
	switch {
	case r.IPSetID != "":
		list = testIPSets[r.IPSetID]
	case r.RemoteGroupID != "":
		for _, a := range testMembers[r.RemoteGroupID] {
			list = append(list, netip.PrefixFrom(a, a.BitLen()))
		}
	default:
		return r.IPRange
	}
	if len(list) == 0 {
		return netip.PrefixFrom(pick(rng, remoteAnchors4), pick(rng, remoteBits4)).Masked()
	}
	return pick(rng, list)
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func pick[T any](rng *rand.Rand, list []T) T { return list[rng.IntN(len(list))] }

// randomGroup returns a group with up to maxRules random rules, positioned.
func randomGroup(rng *rand.Rand, id string, maxRules int) (store.Group, []store.Rule) {
	pol := func() store.Policy { return pick(rng, []store.Policy{store.Accept, store.Drop}) }
	g := group(id, rng.IntN(2) == 0, pol(), pol(), rng.IntN(3) == 0)
	n := rng.IntN(maxRules + 1)
	rules := make([]store.Rule, n)
	for i := range rules {
		rules[i] = randomRule(rng, fmt.Sprintf("%s-r%d", id[:1], i+1))
	}
	return g, positioned(id, rules)
}

func randomRule(rng *rand.Rand, id string) store.Rule {
	r := store.Rule{ID: id, Editable: true,
		Direction: pick(rng, []store.Direction{store.Inbound, store.Outbound}),
		Action:    pick(rng, []store.Policy{store.Accept, store.Drop}),
		Protocol:  pick(rng, []store.Protocol{store.TCP, store.TCP, store.TCP, store.UDP, store.UDP, store.ICMP, store.ANY, store.ANY}),
	}
	v4 := rng.IntN(5) < 3
	switch k := rng.IntN(8); {
	case k == 0:
		r.IPSetID = pick(rng, testSets)
	case k == 1:
		r.RemoteGroupID = pick(rng, testGrps)
	case v4:
		r.IPRange = netip.PrefixFrom(pick(rng, remoteAnchors4), pick(rng, remoteBits4)).Masked()
	default:
		r.IPRange = netip.PrefixFrom(pick(rng, remoteAnchors6), pick(rng, remoteBits6)).Masked()
	}
	if rng.IntN(4) == 0 {
		if v4 {
			r.DestIPRange = netip.PrefixFrom(pick(rng, localAnchors4), pick(rng, localBits4)).Masked()
		} else {
			r.DestIPRange = netip.PrefixFrom(pick(rng, localAnchors6), pick(rng, localBits6)).Masked()
		}
	}
	if r.Protocol.HasPorts() {
		switch rng.IntN(3) {
		case 0: // every port
		case 1:
			r.DestPortFrom = uint16(nearPort(rng))
		default:
			from := nearPort(rng)
			to := min(65535, from+pick(rng, []int{1, 2, 10, 100, 1000, 30000, 65535}))
			if to > from {
				r.DestPortFrom, r.DestPortTo = uint16(from), uint16(to)
			} else {
				r.DestPortFrom = uint16(from)
			}
		}
	}
	return r
}

// nearPort returns a port at or next to an anchor.
func nearPort(rng *rand.Rand) int {
	p := pick(rng, portAnchors) + rng.IntN(3) - 1
	return max(1, min(65535, p))
}

// randomPacket returns a packet near the edges of a random rule of rules
// (or of an SMTP row), or anywhere.
func randomPacket(rng *rand.Rand, rules []store.Rule, groupID string) Packet {
	from := rules
	if len(rules) == 0 || rng.IntN(5) == 0 {
		from = store.SMTPRules(groupID)
	}
	r := pick(rng, from)
	p := Packet{Direction: r.Direction, State: New}
	if rng.IntN(5) == 0 {
		p.Direction = pick(rng, []store.Direction{store.Inbound, store.Outbound})
	}
	if rng.IntN(5) == 0 {
		p.State = Established
	}
	remote := remoteOf(rng, r)
	v4 := remote.Addr().Is4()
	if rng.IntN(10) == 0 {
		v4 = !v4
	}
	if v4 == remote.Addr().Is4() && rng.IntN(5) > 0 {
		p.Remote = nearPrefix(rng, remote)
	} else if v4 {
		p.Remote = nearPrefix(rng, netip.PrefixFrom(pick(rng, remoteAnchors4), pick(rng, remoteBits4)))
	} else {
		p.Remote = nearPrefix(rng, netip.PrefixFrom(pick(rng, remoteAnchors6), pick(rng, remoteBits6)))
	}
	if r.DestIPRange.IsValid() && r.DestIPRange.Addr().Is4() == v4 && rng.IntN(3) > 0 {
		p.Local = nearPrefix(rng, r.DestIPRange)
	} else if v4 {
		p.Local = nearPrefix(rng, netip.PrefixFrom(pick(rng, localAnchors4), pick(rng, localBits4)))
	} else {
		p.Local = nearPrefix(rng, netip.PrefixFrom(pick(rng, localAnchors6), pick(rng, localBits6)))
	}
	p.Protocol = r.Protocol
	if p.Protocol == store.ANY || rng.IntN(4) == 0 {
		p.Protocol = pick(rng, []store.Protocol{store.TCP, store.UDP, store.ICMP, "47", "253"})
	}
	if p.Protocol.HasPorts() {
		switch {
		case r.DestPortFrom != 0 && rng.IntN(4) > 0:
			hi := max(r.DestPortFrom, r.DestPortTo)
			p.Port = uint16(max(0, min(65535, pick(rng, []int{int(r.DestPortFrom), int(hi)})+rng.IntN(3)-1)))
		case rng.IntN(20) == 0:
			p.Port = 0
		default:
			p.Port = uint16(nearPort(rng))
		}
	}
	return p
}

// nearPrefix returns an address at an edge of p, just outside it, or
// inside it at random.
func nearPrefix(rng *rand.Rand, p netip.Prefix) netip.Addr {
	p = p.Masked()
	s := prefixSpan(p)
	fam := famOf(p.Addr())
	space := addrSpace(fam)
	switch rng.IntN(5) {
	case 0:
		return s.lo.addr(fam)
	case 1:
		return s.hi.addr(fam)
	case 2:
		if s.lo != space.lo {
			return s.lo.dec().addr(fam)
		}
	case 3:
		if s.hi != space.hi {
			return s.hi.inc().addr(fam)
		}
	}
	// Random host bits.
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		if rng.IntN(2) == 0 {
			b[i/8] ^= 0x80 >> (i % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Dense groups draw from few ranges, ports and protocols, so that unions,
// protocol classes and local ranges interact far more often than in
// randomGroup: they are for the exhaustive check, not for the kernel.
var (
	denseRemote4 = prefixes("0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/9", "10.128.0.0/9", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32")
	denseRemote6 = prefixes("::/0", "2001:db8::/32", "2001:db8::/33", "2001:db8:8000::/33", "2001:db8:1::/48")
	denseLocal4  = prefixes("192.0.2.0/24", "192.0.2.0/25", "192.0.2.128/25", "192.0.2.7/32")
	denseLocal6  = prefixes("2001:db8:ff::/48", "2001:db8:ff::/49", "2001:db8:ff:8000::/49")
	densePorts   = []uint16{1, 20, 22, 25, 30, 80, 465, 587, 1024, 65535}
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func denseGroup(rng *rand.Rand, id string) (store.Group, []store.Rule) {
	pol := func() store.Policy { return pick(rng, []store.Policy{store.Accept, store.Drop}) }
	g := group(id, rng.IntN(2) == 0, pol(), pol(), rng.IntN(2) == 0)
	rules := make([]store.Rule, 4+rng.IntN(11))
	for i := range rules {
		r := store.Rule{ID: fmt.Sprintf("d%d", i+1), Editable: true,
			Direction: pick(rng, []store.Direction{store.Inbound, store.Outbound}),
			Action:    pol(),
			Protocol:  pick(rng, []store.Protocol{store.TCP, store.UDP, store.ICMP, store.ANY}),
		}
		v4 := rng.IntN(2) == 0
		switch k := rng.IntN(6); {
		case k == 0:
			r.IPSetID = pick(rng, testSets)
		case k == 1:
			r.RemoteGroupID = pick(rng, testGrps)
		case v4:
			r.IPRange = pick(rng, denseRemote4)
		default:
			r.IPRange = pick(rng, denseRemote6)
		}
		if rng.IntN(2) == 0 {
			if v4 {
				r.DestIPRange = pick(rng, denseLocal4)
			} else {
				r.DestIPRange = pick(rng, denseLocal6)
			}
		}
		if r.Protocol.HasPorts() && rng.IntN(5) > 1 {
			a, b := pick(rng, densePorts), pick(rng, densePorts)
			r.DestPortFrom, r.DestPortTo = min(a, b), max(a, b)
			if r.DestPortTo == r.DestPortFrom || rng.IntN(3) == 0 {
				r.DestPortTo = 0
			}
		}
		rules[i] = r
	}
	return g, positioned(id, rules)
}
