package explain

import (
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/rampart-fw/rampart/enforcer"
)

func TestPrefixSpan(t *testing.T) {
	for _, tt := range []struct{ prefix, lo, hi string }{
		{"10.1.2.0/24", "10.1.2.0", "10.1.2.255"},
		{"0.0.0.0/0", "0.0.0.0", "255.255.255.255"},
		{"192.0.2.7/32", "192.0.2.7", "192.0.2.7"},
		{"2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"2001:db8:0:0:8000::/65", "2001:db8:0:0:8000::", "2001:db8::ffff:ffff:ffff:ffff"},
		{"::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"2001:db8::1/128", "2001:db8::1", "2001:db8::1"},
	} {
		p := netip.MustParsePrefix(tt.prefix)
		s := prefixSpan(p)
		fam := famOf(p.Addr())
		if lo, hi := s.lo.addr(fam).String(), s.hi.addr(fam).String(); lo != tt.lo || hi != tt.hi {
			t.Errorf("%s: got %s-%s, want %s-%s", tt.prefix, lo, hi, tt.lo, tt.hi)
		}
	}
}

// volume counts the points of a box whose spans are small.
func volume(b box) uint64 {
	v := uint64(bits.OnesCount8(uint8(b.proto)))
	for d := range nDims {
		v *= b.dims[d].hi.lo - b.dims[d].lo.lo + 1
	}
	return v
}

// TestBoxMinus checks box subtraction on random small boxes: the pieces
// are disjoint, inside the first box, outside the second, and with the
// intersection they count every point of the first box.
func TestBoxMinus(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randBox := func() box {
		b := box{fam: enforcer.FamilyIPv4, proto: protoSet(1 + rng.IntN(31))}
		for d := range nDims {
			lo, hi := uint64(rng.IntN(16)), uint64(rng.IntN(16))
			b.dims[d] = span{u128{0, min(lo, hi)}, u128{0, max(lo, hi)}}
		}
		return b
	}
	for range 20000 {
		a, b := randBox(), randBox()
		pieces := a.minus(b, nil)
		sum := uint64(0)
		for i, p := range pieces {
			if x, ok := p.intersect(a); !ok || x != p {
				t.Fatalf("%+v - %+v: piece %+v is not inside the first", a, b, p)
			}
			if p.intersects(b) {
				t.Fatalf("%+v - %+v: piece %+v meets the second", a, b, p)
			}
			for _, q := range pieces[i+1:] {
				if p.intersects(q) {
					t.Fatalf("%+v - %+v: pieces %+v and %+v overlap", a, b, p, q)
				}
			}
			sum += volume(p)
		}
		if x, ok := a.intersect(b); ok {
			sum += volume(x)
		}
		if sum != volume(a) {
			t.Fatalf("%+v - %+v: %d points in pieces and intersection, want %d", a, b, sum, volume(a))
		}
	}
}
