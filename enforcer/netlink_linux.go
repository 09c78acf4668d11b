//go:build linux

package enforcer

import (
	"encoding/binary"
	"errors"
	"fmt"

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
	counter *Counter
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
								if name != "counter" {
									continue
								}
								ed.Nested(func(cd *netlink.AttributeDecoder) error {
									cd.ByteOrder = binary.BigEndian
									var ctr Counter
									for cd.Next() {
										switch cd.Type() {
										case unix.NFTA_COUNTER_BYTES:
											ctr.Bytes = cd.Uint64()
										case unix.NFTA_COUNTER_PACKETS:
											ctr.Packets = cd.Uint64()
										}
									}
									r.counter = &ctr
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
