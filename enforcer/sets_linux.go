//go:build linux

package enforcer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The kernel's side of named sets (sets.go): their elements as nf_tables
// holds them, encoded into the batch, chunked, and read back.
//
// An interval set holds, as nft makes it, for each prefix a start element
// (its first address) and an end element (the address after its last,
// flagged NFT_SET_ELEM_INTERVAL_END), except for a prefix that ends at the
// family's last address (128.0.0.0/1, ::/0), whose interval is open: there
// is no address after it. Adjacent prefixes (10.0.0.0/25, 10.0.0.128/25)
// give an end and a start with the same key, as nft 1.0 sends them, which
// the kernel's interval tree holds side by side. (nft also adds an end
// element at address 0 to a new set; the tree needs none to match nothing
// below the first start, and listings are the same without it.)
//
// A change of prefixes deletes the elements of the prefixes that went and
// adds those of the prefixes that came, in one transaction, as nft does:
// a start or end that both an old and a new prefix have (10.0.0.0 when
// 10.0.0.0/25 and 10.0.0.128/25 become 10.0.0.0/24) is deleted and added
// again. The interval tree checks what it adds against the elements that
// stay (those deleted earlier in the transaction no longer count), and
// refuses a start or an end added inside an interval that stays whole:
// splitting 10.0.0.0/24 by adding only the end at 10.0.0.128 and the
// start there fails with EEXIST or ENOTEMPTY (TestKernelSetIntervalsReplaced).
// The packet path sees the old elements or the new ones, never a mix.

const (
	msgNewSetElem = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM
	msgDelSetElem = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELSETELEM
)

// kelem is one element of a kernel set.
type kelem struct {
	key [16]byte
	n   uint8 // key length: 4 or 16
	end bool  // NFT_SET_ELEM_INTERVAL_END
}

// compareKelems orders elements by key and, at one key, an end before a
// start: the order in which the interval tree takes adjacent intervals.
func compareKelems(a, b kelem) int {
	if c := bytes.Compare(a.key[:a.n], b.key[:b.n]); c != 0 {
		return c
	}
	switch {
	case a.end == b.end:
		return 0
	case a.end:
		return -1
	}
	return 1
}

func addrKelem(a netip.Addr, end bool) kelem {
	e := kelem{end: end}
	if a.Is4() {
		k := a.As4()
		copy(e.key[:], k[:])
		e.n = 4
	} else {
		e.key = a.As16()
		e.n = 16
	}
	return e
}

// appendKelems appends the elements of prefixes of a set, sorted if the
// prefixes are (Set.Elems are).
func appendKelems(out []kelem, interval bool, prefixes []netip.Prefix) []kelem {
	for _, p := range prefixes {
		out = append(out, addrKelem(p.Addr(), false))
		if !interval {
			continue
		}
		if next := lastAddr(p).Next(); next.IsValid() {
			out = append(out, addrKelem(next, true))
		}
	}
	return out
}

// lastAddr returns the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// setKelems returns the elements the kernel holds for s.
func setKelems(s Set) []kelem {
	n := len(s.Elems)
	if s.Interval {
		n *= 2
	}
	return appendKelems(make([]kelem, 0, n), s.Interval, s.Elems)
}

// elemChange returns the elements to delete and to add for a change of a
// set's prefixes: those of the prefixes that went and came, sorted.
func elemChange(d elemDiff) (del, add []kelem) {
	n := 1
	if d.set.Interval {
		n = 2
	}
	del = appendKelems(make([]kelem, 0, n*len(d.del)), d.set.Interval, d.del)
	add = appendKelems(make([]kelem, 0, n*len(d.add)), d.set.Interval, d.add)
	return del, add
}

// libSet is the library's description of s, for the messages it
// serialises (NEWSET) and the lookups of rules.
func libSet(t *nftables.Table, s Set) *nftables.Set {
	kt := nftables.TypeIPAddr
	if s.Family == FamilyIPv6 {
		kt = nftables.TypeIP6Addr
	}
	return &nftables.Set{Table: t, Name: s.Name, KeyType: kt, Interval: s.Interval, KeyByteOrder: binaryutil.BigEndian}
}

// register makes the sets of a Ruleset known to the batch, for the rules
// that match them; their IDs are given when a set is added in the batch.
func (b *batch) register(list []Set) {
	for _, s := range list {
		if _, ok := b.sets[s.Name]; !ok {
			b.sets[s.Name] = libSet(b.t, s)
		}
	}
}

// addSet adds s (the library serialises NEWSET) and its elements.
func (b *batch) addSet(s Set) error {
	ls, ok := b.sets[s.Name]
	if !ok {
		ls = libSet(b.t, s)
		b.sets[s.Name] = ls
	}
	if err := b.conn().AddSet(ls, nil); err != nil {
		return fmt.Errorf("add set %s: %w", s.Name, err)
	}
	return b.setElems(msgNewSetElem, ls, setKelems(s))
}

// delSet deletes the named set and its elements.
func (b *batch) delSet(name string) {
	b.conn().DelSet(&nftables.Set{Table: b.t, Name: name})
}

// Chunks of set elements: github.com/google/nftables v0.3.0 (whose
// encoding this mirrors, TestEncodeSetElemsMatchLibrary) nests every
// element of a message in one attribute, whose length is 16 bits: past 64
// KiB it wraps and the kernel reads garbage or a prefix of the list. So a
// message carries at most setElemChunk elements and setElemBytes bytes of
// them (an IPv6 interval end is 36 bytes: 1,666 of them).
const (
	setElemChunk = 2000
	setElemBytes = 60000
)

// kelemSize is the encoded size of an element: its nest, the flags of an
// interval end, the key's nest and value.
func kelemSize(e kelem) int {
	n := 4 + 4 + 4 + int(e.n)
	if e.end {
		n += 8
	}
	return n
}

// setElems encodes NEWSETELEM or DELSETELEM messages for elems, chunked.
func (b *batch) setElems(typ uint16, s *nftables.Set, elems []kelem) error {
	if err := b.syncLib(); err != nil {
		return err
	}
	for len(elems) > 0 {
		n, size := 0, 0
		for n < len(elems) && n < setElemChunk && size+kelemSize(elems[n]) <= setElemBytes {
			size += kelemSize(elems[n])
			n++
		}
		b.setElemMsg(typ, s, elems[:n])
		elems = elems[n:]
	}
	return nil
}

// setElemMsg encodes one message, as the library's SetAddElements and
// SetDeleteElements do (flags of the flags attribute included).
func (b *batch) setElemMsg(typ uint16, s *nftables.Set, elems []kelem) {
	start := b.header(typ, netlink.Request|netlink.Create)
	b.buf = append(b.buf, byte(nftables.TableFamilyINet), unix.NFNETLINK_V0, 0, 0)
	b.attrString(unix.NFTA_SET_NAME, s.Name)
	b.attrU32(unix.NFTA_LOOKUP_SET_ID, s.ID)
	b.attrString(unix.NFTA_SET_TABLE, b.t.Name)
	list := b.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
	for i, e := range elems {
		item := b.nest(uint16(i + 1))
		if e.end {
			b.buf = binary.NativeEndian.AppendUint16(b.buf, 8)
			b.buf = binary.NativeEndian.AppendUint16(b.buf, unix.NFTA_SET_ELEM_FLAGS|unix.NLA_F_NESTED)
			b.buf = binary.BigEndian.AppendUint32(b.buf, unix.NFT_SET_ELEM_INTERVAL_END)
		}
		key := b.nest(unix.NFTA_SET_ELEM_KEY)
		b.attr(unix.NFTA_DATA_VALUE, e.key[:e.n])
		b.unnest(key)
		b.unnest(item)
	}
	b.unnest(list)
	b.end(start)
}

// dumpSetElems returns the elements of one of our sets, sorted. (The
// library's GetSetElements reads only the first message of a dump.)
func dumpSetElems(netnsFD int, name string) ([]kelem, error) {
	c, err := dialNetfilter(netnsFD)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := bigBuffers(c); err != nil {
		return nil, err
	}
	data, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(TableName + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(name + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: nftMsgType(unix.NFT_MSG_GETSETELEM), Flags: netlink.Request | netlink.Dump},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, data...),
	})
	if err != nil {
		return nil, fmt.Errorf("dump set %s: %w", name, err)
	}
	var out []kelem
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("decode set %s: %w", name, err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				continue
			}
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					list.Nested(func(el *netlink.AttributeDecoder) error {
						el.ByteOrder = binary.BigEndian
						var e kelem
						for el.Next() {
							switch el.Type() {
							case unix.NFTA_SET_ELEM_FLAGS:
								e.end = el.Uint32()&unix.NFT_SET_ELEM_INTERVAL_END != 0
							case unix.NFTA_SET_ELEM_KEY:
								el.Nested(func(d *netlink.AttributeDecoder) error {
									for d.Next() {
										if d.Type() == unix.NFTA_DATA_VALUE {
											k := d.Bytes()
											e.n = uint8(copy(e.key[:], k))
										}
									}
									return nil
								})
							}
						}
						out = append(out, e)
						return nil
					})
				}
				return nil
			})
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decode set %s: %w", name, err)
		}
	}
	slices.SortFunc(out, compareKelems)
	return out, nil
}
