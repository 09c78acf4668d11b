package explain

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// The packet space of one chain, for new packets: a family, a remote and a
// local address, a protocol and, for TCP and UDP, a destination port.
// Every rule of a supported chain matches a union of boxes of that space
// (a box per family and protocol class), and first-match semantics become
// set operations on unions of disjoint boxes.

// u128 is an address as an integer: IPv4 in the low 32 bits.
type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func (a u128) inc() u128 {
	lo, carry := bits.Add64(a.lo, 1, 0)
	return u128{a.hi + carry, lo}
}

func (a u128) dec() u128 {
	lo, borrow := bits.Sub64(a.lo, 1, 0)
	return u128{a.hi - borrow, lo}
}

func addrU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{0, uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func famOf(a netip.Addr) enforcer.Family {
	if a.Is4() {
		return enforcer.FamilyIPv4
	}
	return enforcer.FamilyIPv6
}

func (a u128) addr(fam enforcer.Family) netip.Addr {
	if fam == enforcer.FamilyIPv4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(a.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return netip.AddrFrom16(b)
}

// span is an inclusive interval.
type span struct{ lo, hi u128 }

func (s span) contains(v u128) bool { return s.lo.cmp(v) <= 0 && v.cmp(s.hi) <= 0 }

func addrSpace(fam enforcer.Family) span {
	if fam == enforcer.FamilyIPv4 {
		return span{u128{}, u128{0, 1<<32 - 1}}
	}
	return span{u128{}, u128{^uint64(0), ^uint64(0)}}
}

func prefixSpan(p netip.Prefix) span {
	p = p.Masked()
	lo := addrU128(p.Addr())
	host := p.Addr().BitLen() - p.Bits() // host bits
	var mask u128
	switch {
	case host >= 128:
		mask = u128{^uint64(0), ^uint64(0)}
	case host >= 64:
		mask = u128{1<<(host-64) - 1, ^uint64(0)}
	default:
		mask = u128{0, 1<<host - 1}
	}
	return span{lo, u128{lo.hi | mask.hi, lo.lo | mask.lo}}
}

var portSpace = span{u128{}, u128{0, 65535}}

// Protocol classes. Compiled rules match protocols 1, 6, 17 and 58 by
// number, or every protocol: so every other protocol number behaves alike
// and one class stands for all of them.
type protoSet uint8

const (
	classICMP   protoSet = 1 << iota // protocol 1
	classTCP                         // 6
	classUDP                         // 17
	classICMPv6                      // 58
	classOther                       // every other protocol number

	// Only TCP and UDP packets have a destination port: a box holds
	// either ported classes and a port interval, or unported classes and
	// every port (which then means "no port").
	ported   = classTCP | classUDP
	unported = classICMP | classICMPv6 | classOther
)

// otherL4 is the protocol that stands for classOther in examples: GRE.
const otherL4 = 47

func classOf(l4 uint8) protoSet {
	switch enforcer.L4(l4) {
	case enforcer.L4ICMP:
		return classICMP
	case enforcer.L4TCP:
		return classTCP
	case enforcer.L4UDP:
		return classUDP
	case enforcer.L4ICMPv6:
		return classICMPv6
	}
	return classOther
}

// Dimensions of a box.
const (
	dimRemote = iota
	dimLocal
	dimPort
	nDims
)

// box is a set of packets: one family, an interval per dimension and a
// set of protocol classes.
type box struct {
	fam   enforcer.Family
	dims  [nDims]span
	proto protoSet
}

func (b box) intersects(c box) bool {
	if b.fam != c.fam || b.proto&c.proto == 0 {
		return false
	}
	for d := range nDims {
		if b.dims[d].hi.cmp(c.dims[d].lo) < 0 || c.dims[d].hi.cmp(b.dims[d].lo) < 0 {
			return false
		}
	}
	return true
}

func (b box) intersect(c box) (box, bool) {
	if !b.intersects(c) {
		return box{}, false
	}
	for d := range nDims {
		if c.dims[d].lo.cmp(b.dims[d].lo) > 0 {
			b.dims[d].lo = c.dims[d].lo
		}
		if c.dims[d].hi.cmp(b.dims[d].hi) < 0 {
			b.dims[d].hi = c.dims[d].hi
		}
	}
	b.proto &= c.proto
	return b, true
}

// minus appends to out the disjoint boxes that make b without c.
func (b box) minus(c box, out []box) []box {
	if !b.intersects(c) {
		return append(out, b)
	}
	cur := b
	for d := range nDims {
		if cur.dims[d].lo.cmp(c.dims[d].lo) < 0 {
			piece := cur
			piece.dims[d].hi = c.dims[d].lo.dec()
			out = append(out, piece)
			cur.dims[d].lo = c.dims[d].lo
		}
		if cur.dims[d].hi.cmp(c.dims[d].hi) > 0 {
			piece := cur
			piece.dims[d].lo = c.dims[d].hi.inc()
			out = append(out, piece)
			cur.dims[d].hi = c.dims[d].hi
		}
	}
	if rest := cur.proto &^ c.proto; rest != 0 {
		cur.proto = rest
		out = append(out, cur)
	}
	return out
}

// set is a union of disjoint boxes.
type set []box

func (s set) empty() bool { return len(s) == 0 }

// meter counts the box comparisons of an analysis. Rules can cut the
// packet space into a number of pieces that grows with the cube of their
// number (ranges of addresses against ranges of ports, say); the meter
// makes such a group fail fast rather than take minutes.
type meter struct{ left int }

// tooComplex is the panic value of a meter that ran out; Analyze
// recovers it.
type tooComplex struct{}

func (m *meter) spend(n int) {
	m.left -= n
	if m.left < 0 {
		panic(tooComplex{})
	}
}

// minus returns s without the boxes bs. It reuses s's storage: a caller
// that keeps s passes a clone.
func (s set) minus(bs []box, m *meter) set {
	var frags []box
	for _, c := range bs {
		m.spend(len(s))
		frags = frags[:0]
		for i := 0; i < len(s); {
			if !s[i].intersects(c) {
				i++
				continue
			}
			frags = s[i].minus(c, frags)
			s[i] = s[len(s)-1]
			s = s[:len(s)-1]
		}
		s = append(s, frags...)
	}
	return s
}

func (s set) intersect(bs []box, m *meter) set {
	m.spend(len(s) * len(bs))
	var out set
	for _, b := range s {
		for _, c := range bs {
			if x, ok := b.intersect(c); ok {
				out = append(out, x)
			}
		}
	}
	return out
}

func (s set) intersects(bs []box, m *meter) bool {
	m.spend(len(s) * len(bs))
	for _, b := range s {
		for _, c := range bs {
			if b.intersects(c) {
				return true
			}
		}
	}
	return false
}

// maxExactSpans bounds the intervals of a set (per family) that the
// analysis takes one by one; a larger set is taken as bounds (see
// entryBounds). A variable for tests.
var maxExactSpans = 256

// matchBoxes returns the new packets that entry e of a chain of direction
// dir matches, as disjoint boxes: for a set, a box per interval of the
// union of its kernel sets. e's rules are supported.
func matchBoxes(e *entry, dir store.Direction) []box {
	if !e.isSet() {
		return ruleBoxes(e.first(), dir, nil)
	}
	var out []box
	for _, fam := range []enforcer.Family{enforcer.FamilyIPv4, enforcer.FamilyIPv6} {
		spans, ok := e.familySpans(fam)
		if !ok || len(spans) == 0 {
			continue
		}
		out = append(out, ruleBoxes(e.alts[slices.IndexFunc(e.alts, func(r enforcer.Rule) bool { return r.Family == fam })], dir, spans)...)
	}
	return out
}

// entryBounds returns boxes lo and hi such that the packets e matches
// contain lo's and are contained in hi's, and whether both are exact (the
// same boxes). A set of more than maxExactSpans intervals in a family
// would cut the packet space into as many pieces per rule it meets: there
// hi holds the family's hull (first to last address of the set) and lo
// nothing, which keeps the analysis cheap and its findings true.
func entryBounds(e *entry, dir store.Direction) (lo, hi []box, exact bool) {
	if !e.isSet() {
		b := ruleBoxes(e.first(), dir, nil)
		return b, b, true
	}
	exact = true
	for _, fam := range []enforcer.Family{enforcer.FamilyIPv4, enforcer.FamilyIPv6} {
		spans, ok := e.familySpans(fam)
		if !ok || len(spans) == 0 {
			continue
		}
		r := e.alts[slices.IndexFunc(e.alts, func(r enforcer.Rule) bool { return r.Family == fam })]
		if len(spans) <= maxExactSpans {
			b := ruleBoxes(r, dir, spans)
			lo, hi = append(lo, b...), append(hi, b...)
			continue
		}
		exact = false
		hi = append(hi, ruleBoxes(r, dir, []span{{spans[0].lo, spans[len(spans)-1].hi}})...)
	}
	return lo, hi, exact
}

// ruleBoxes returns the new packets that kernel rule r of a chain of
// direction dir matches, as disjoint boxes, with the remote side in the
// given disjoint intervals instead of r's prefix when remote is not nil.
func ruleBoxes(r enforcer.Rule, dir store.Direction, remoteSpans []span) []box {
	if r.CTEstablished {
		return nil // new packets are never established
	}
	fams := []enforcer.Family{enforcer.FamilyIPv4, enforcer.FamilyIPv6}
	if r.Family != enforcer.FamilyAny {
		fams = []enforcer.Family{r.Family}
	}
	remote, local := r.SAddr, r.DAddr
	if dir == store.Outbound {
		remote, local = r.DAddr, r.SAddr
	}
	var out []box
	for _, fam := range fams {
		if remoteSpans == nil {
			out = append(out, famBoxes(r, fam, remote, local, nil)...)
			continue
		}
		for i := range remoteSpans {
			out = append(out, famBoxes(r, fam, remote, local, &remoteSpans[i])...)
		}
	}
	return out
}

// famBoxes returns the boxes of r in family fam, with the remote side in
// rs when not nil, else in remote (or anywhere).
func famBoxes(r enforcer.Rule, fam enforcer.Family, remote, local netip.Prefix, rs *span) []box {
	var out []box
	{
		b := box{fam: fam}
		b.dims[dimRemote], b.dims[dimLocal], b.dims[dimPort] = addrSpace(fam), addrSpace(fam), portSpace
		switch {
		case rs != nil:
			b.dims[dimRemote] = *rs
		case remote.IsValid():
			b.dims[dimRemote] = prefixSpan(remote)
		}
		if local.IsValid() {
			b.dims[dimLocal] = prefixSpan(local)
		}
		switch r.L4 {
		case enforcer.L4Any:
			p, u := b, b
			p.proto, u.proto = ported, unported
			out = append(out, p, u)
		case enforcer.L4TCP, enforcer.L4UDP:
			b.proto = classOf(uint8(r.L4))
			if r.DPortFrom != 0 {
				hi := r.DPortTo
				if hi == 0 {
					hi = r.DPortFrom
				}
				b.dims[dimPort] = span{u128{0, uint64(r.DPortFrom)}, u128{0, uint64(hi)}}
			}
			out = append(out, b)
		default:
			b.proto = classOf(uint8(r.L4))
			out = append(out, b)
		}
	}
	return out
}

// Addresses an example prefers, when a box holds them: documentation
// addresses read as examples, 0.0.0.1 does not.
var (
	niceV4 = []netip.Addr{
		netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("198.51.100.10"),
		netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("10.0.0.10"),
	}
	niceV6 = []netip.Addr{netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("fd00::10")}
)

func pickAddr(s span, fam enforcer.Family) netip.Addr {
	nice := niceV6
	if fam == enforcer.FamilyIPv4 {
		nice = niceV4
	}
	for _, a := range nice {
		if s.contains(addrU128(a)) {
			return a
		}
	}
	if s.lo.cmp(s.hi) < 0 {
		return s.lo.inc().addr(fam) // not the network address
	}
	return s.lo.addr(fam)
}

// point returns a packet of b, in direction dir.
func (b box) point(dir store.Direction) Packet {
	p := Packet{
		Direction: dir,
		Remote:    pickAddr(b.dims[dimRemote], b.fam),
		Local:     pickAddr(b.dims[dimLocal], b.fam),
		State:     New,
	}
	icmp, otherICMP := classICMP, classICMPv6
	if b.fam == enforcer.FamilyIPv6 {
		icmp, otherICMP = classICMPv6, classICMP
	}
	var c protoSet
	for _, c = range []protoSet{classTCP, classUDP, icmp, classOther, otherICMP} {
		if b.proto&c != 0 {
			break
		}
	}
	l4 := uint8(otherL4)
	switch c {
	case classTCP:
		l4 = uint8(enforcer.L4TCP)
	case classUDP:
		l4 = uint8(enforcer.L4UDP)
	case classICMP:
		l4 = uint8(enforcer.L4ICMP)
	case classICMPv6:
		l4 = uint8(enforcer.L4ICMPv6)
	}
	p.Protocol = protocolOf(l4, p.Remote)
	if c&ported != 0 {
		s := b.dims[dimPort]
		p.Port = uint16(s.lo.lo)
		if p.Port == 0 && s.hi.lo > 0 {
			p.Port = 1 // port 0 is a packet, but a confusing example
		}
	}
	return p
}
