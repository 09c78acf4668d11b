//go:build linux

package enforcer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The two requests below are not offered by github.com/google/nftables in
// the form needed: the ruleset generation (which makes the periodic drift
// check one round trip), and one dump of every rule of our table at once
// (its GetRules needs a chain, which would cost one dump per chain).

func dialNetfilter(netnsFD int) (*netlink.Conn, error) {
	cfg := &netlink.Config{}
	if netnsFD >= 0 {
		cfg.NetNS = netnsFD
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("dial netfilter netlink: %w", err)
	}
	return c, nil
}

func nftMsgType(msg int) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msg)
}

// getGen returns nf_tables' ruleset generation: the kernel bumps it on every
// committed transaction in the namespace, whoever sends it.
func getGen(c *netlink.Conn) (uint32, error) {
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: nftMsgType(unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return 0, fmt.Errorf("get nftables generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("decode nftables generation: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, fmt.Errorf("get nftables generation: no generation in answer")
}

// kernelRule is what the enforcer reads back of a rule.
type kernelRule struct {
	chain   string
	tag     string
	counter string // the counter object it names, if any
}

// dumpRules returns the rules of our table, of one chain when chain is not
// empty, in chain order. A missing table or chain gives no rules.
func dumpRules(netnsFD int, chain string) ([]kernelRule, error) {
	c, err := dialNetfilter(netnsFD)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	attrs := []netlink.Attribute{{Type: unix.NFTA_RULE_TABLE, Data: []byte(TableName + "\x00")}}
	if chain != "" {
		attrs = append(attrs, netlink.Attribute{Type: unix.NFTA_RULE_CHAIN, Data: []byte(chain + "\x00")})
	}
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return nil, err
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: nftMsgType(unix.NFT_MSG_GETRULE), Flags: netlink.Request | netlink.Dump},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, data...),
	})
	if err != nil {
		if chain != "" && isNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("dump rules: %w", err)
	}
	out := make([]kernelRule, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Type != nftMsgType(unix.NFT_MSG_NEWRULE) || len(m.Data) < 4 {
			continue
		}
		r, err := decodeRule(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("decode rule: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

func isNotFound(err error) bool {
	return errors.Is(err, unix.ENOENT)
}

func decodeRule(b []byte) (kernelRule, error) {
	var r kernelRule
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return r, err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_CHAIN:
			r.chain = ad.String()
		case unix.NFTA_RULE_USERDATA:
			r.tag, _ = userdata.GetString(ad.Bytes(), userdata.TypeComment)
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					list.Nested(func(ed *netlink.AttributeDecoder) error {
						var name string
						for ed.Next() {
							switch ed.Type() {
							case unix.NFTA_EXPR_NAME:
								name = ed.String()
							case unix.NFTA_EXPR_DATA:
								if name != "objref" {
									continue
								}
								ed.Nested(func(od *netlink.AttributeDecoder) error {
									od.ByteOrder = binary.BigEndian
									var typ uint32
									var obj string
									for od.Next() {
										switch od.Type() {
										case unix.NFTA_OBJREF_IMM_TYPE:
											typ = od.Uint32()
										case unix.NFTA_OBJREF_IMM_NAME:
											obj = cString(od.Bytes())
										}
									}
									if typ == uint32(ObjCounter) {
										r.counter = obj
									}
									return nil
								})
							}
						}
						return nil
					})
				}
				return nil
			})
		}
	}
	return r, ad.Err()
}

// dumpMap returns the elements of one of our verdict maps, interface ->
// chain jumped to. (github.com/google/nftables v0.3.0 neither decodes
// verdict data of map elements nor reads past the first dump message.)
func dumpMap(netnsFD int, name string) (map[string]string, error) {
	c, err := dialNetfilter(netnsFD)
	if err != nil {
		return nil, err
	}
	defer c.Close()
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
		return nil, fmt.Errorf("dump map %s: %w", name, err)
	}
	out := map[string]string{}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("decode map %s: %w", name, err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				continue
			}
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() {
					list.Nested(func(el *netlink.AttributeDecoder) error {
						var key, chain string
						for el.Next() {
							switch el.Type() {
							case unix.NFTA_SET_ELEM_KEY:
								el.Nested(func(d *netlink.AttributeDecoder) error {
									for d.Next() {
										if d.Type() == unix.NFTA_DATA_VALUE {
											key = cString(d.Bytes())
										}
									}
									return nil
								})
							case unix.NFTA_SET_ELEM_DATA:
								el.Nested(func(d *netlink.AttributeDecoder) error {
									for d.Next() {
										if d.Type() != unix.NFTA_DATA_VERDICT {
											continue
										}
										d.Nested(func(v *netlink.AttributeDecoder) error {
											for v.Next() {
												if v.Type() == unix.NFTA_VERDICT_CHAIN {
													chain = v.String()
												}
											}
											return nil
										})
									}
									return nil
								})
							}
						}
						out[key] = chain
						return nil
					})
				}
				return nil
			})
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decode map %s: %w", name, err)
		}
	}
	return out, nil
}

// tableState is what the table holds besides rules and elements: the
// names a full resync deletes or keeps.
type tableState struct {
	chains  []string
	sets    []string // named sets; anonymous ones go with their rules
	objects []Object // Kind and Name only
}

// dumpTable reads the chains, named sets and objects of our table over c.
// A missing table holds nothing.
func dumpTable(c *netlink.Conn) (tableState, error) {
	var st tableState
	table := []byte(TableName + "\x00")
	dump := func(msg int, attrs []netlink.Attribute, each func(ad *netlink.AttributeDecoder) error) error {
		data, err := netlink.MarshalAttributes(attrs)
		if err != nil {
			return err
		}
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: nftMsgType(msg), Flags: netlink.Request | netlink.Dump},
			Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, data...),
		})
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if len(m.Data) < 4 {
				continue
			}
			ad, err := netlink.NewAttributeDecoder(m.Data[4:])
			if err != nil {
				return err
			}
			ad.ByteOrder = binary.BigEndian
			if err := each(ad); err != nil {
				return err
			}
		}
		return nil
	}
	// Chains: the kernel filters chain dumps by family only.
	err := dump(unix.NFT_MSG_GETCHAIN, nil, func(ad *netlink.AttributeDecoder) error {
		var tbl, name string
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_CHAIN_TABLE:
				tbl = ad.String()
			case unix.NFTA_CHAIN_NAME:
				name = ad.String()
			}
		}
		if tbl == TableName && name != "" {
			st.chains = append(st.chains, name)
		}
		return ad.Err()
	})
	if err != nil {
		return st, fmt.Errorf("dump chains: %w", err)
	}
	err = dump(unix.NFT_MSG_GETSET, []netlink.Attribute{{Type: unix.NFTA_SET_TABLE, Data: table}}, func(ad *netlink.AttributeDecoder) error {
		var tbl, name string
		var flags uint32
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_TABLE:
				tbl = ad.String()
			case unix.NFTA_SET_NAME:
				name = ad.String()
			case unix.NFTA_SET_FLAGS:
				flags = ad.Uint32()
			}
		}
		if tbl == TableName && name != "" && flags&unix.NFT_SET_ANONYMOUS == 0 {
			st.sets = append(st.sets, name)
		}
		return ad.Err()
	})
	if err != nil {
		return st, fmt.Errorf("dump sets: %w", err)
	}
	err = dump(unix.NFT_MSG_GETOBJ, []netlink.Attribute{{Type: unix.NFTA_OBJ_TABLE, Data: table}}, func(ad *netlink.AttributeDecoder) error {
		var tbl string
		var o Object
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_OBJ_TABLE:
				tbl = ad.String()
			case unix.NFTA_OBJ_NAME:
				o.Name = ad.String()
			case unix.NFTA_OBJ_TYPE:
				o.Kind = ObjectKind(ad.Uint32())
			}
		}
		if tbl == TableName && o.Name != "" {
			st.objects = append(st.objects, o)
		}
		return ad.Err()
	})
	if err != nil {
		return st, fmt.Errorf("dump objects: %w", err)
	}
	return st, nil
}

// readCounters reads the named counters over c: with reset, it sets them
// to zero as it reads them (NFT_MSG_GETOBJ_RESET). Every request goes in
// one sendmsg and the kernel answers each with the object or an error
// (ENOENT for a counter it does not hold, left out of the answer); a dump
// of every counter of the table is cheaper than many requests, so more
// than dumpAbove names, without reset, are read that way.
func readCounters(ctx context.Context, c *netlink.Conn, names []string, reset bool) (map[string]Counter, error) {
	out := make(map[string]Counter, len(names))
	if len(names) == 0 {
		return out, nil
	}
	if !reset && len(names) > dumpAbove {
		return dumpCounters(c, names)
	}
	typ := uint16(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETOBJ)
	if reset {
		typ = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETOBJ_RESET
	}
	b := &batch{t: table(), buf: make([]byte, 0, 96*len(names))}
	// Sequence numbers of their own, so that a late answer to an earlier
	// read on this socket is not taken for one of these.
	b.seq = readSeq.Add(uint32(len(names))) - uint32(len(names))
	first := b.seq + 1
	for _, name := range names {
		start := b.objMsg(typ, netlink.Request, Object{Kind: ObjCounter, Name: name})
		b.end(start)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	werr := raw.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), b.buf, nil, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}, 0)
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err := errors.Join(werr, serr); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(ackTimeout)
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	defer c.SetReadDeadline(time.Time{})
	for pending := len(names); pending > 0; {
		msgs, err := c.Receive()
		if err != nil {
			var oe *netlink.OpError
			if errors.As(err, &oe) && isNotFound(err) {
				// One counter missing: netlink reports its error as the
				// call's; the others still come.
				pending--
				continue
			}
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Sequence < first || m.Header.Sequence >= first+uint32(len(names)) {
				continue
			}
			pending--
			if m.Header.Type == netlink.Error || len(m.Data) < 4 {
				continue
			}
			name, ctr, err := decodeCounter(m.Data[4:])
			if err != nil {
				return nil, err
			}
			out[name] = ctr
		}
	}
	return out, nil
}

// dumpAbove is the number of counters above which reading them all costs
// less than asking for each.
const dumpAbove = 2000

// readSeq numbers read requests; see readCounters.
var readSeq atomic.Uint32

// dumpCounters reads every counter of the table and keeps names.
func dumpCounters(c *netlink.Conn, names []string) (map[string]Counter, error) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	data, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_OBJ_TABLE, Data: []byte(TableName + "\x00")},
		{Type: unix.NFTA_OBJ_TYPE, Data: binary.BigEndian.AppendUint32(nil, uint32(ObjCounter))},
	})
	if err != nil {
		return nil, err
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: nftMsgType(unix.NFT_MSG_GETOBJ), Flags: netlink.Request | netlink.Dump},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, data...),
	})
	if err != nil {
		return nil, fmt.Errorf("dump counters: %w", err)
	}
	out := make(map[string]Counter, len(names))
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		name, ctr, err := decodeCounter(m.Data[4:])
		if err != nil {
			return nil, err
		}
		if want[name] {
			out[name] = ctr
		}
	}
	return out, nil
}

// decodeCounter reads a counter object of our table.
func decodeCounter(b []byte) (string, Counter, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return "", Counter{}, fmt.Errorf("decode counter: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	var name, tbl string
	var typ uint32
	var ctr Counter
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_OBJ_TABLE:
			tbl = ad.String()
		case unix.NFTA_OBJ_NAME:
			name = ad.String()
		case unix.NFTA_OBJ_TYPE:
			typ = ad.Uint32()
		case unix.NFTA_OBJ_DATA:
			ad.Nested(func(cd *netlink.AttributeDecoder) error {
				cd.ByteOrder = binary.BigEndian
				for cd.Next() {
					switch cd.Type() {
					case unix.NFTA_COUNTER_BYTES:
						ctr.Bytes = cd.Uint64()
					case unix.NFTA_COUNTER_PACKETS:
						ctr.Packets = cd.Uint64()
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return "", Counter{}, fmt.Errorf("decode counter: %w", err)
	}
	if tbl != TableName || typ != uint32(ObjCounter) {
		return "", Counter{}, nil
	}
	return name, ctr, nil
}
