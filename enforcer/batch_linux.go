//go:build linux

package enforcer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Building and sending one transaction.
//
// github.com/google/nftables asks the kernel, for every message of a batch,
// for an acknowledgement and (for rules) an echo of the rule as created,
// then reads them back one system call at a time; and it builds every
// expression of every rule as a tree of small allocations. For a full
// resync of 10,000 rules the kernel built and queued some 20,000 answers,
// and the process spent more time reading them and collecting garbage than
// the kernel spent on the transaction (BENCHMARKS.md has the before and
// after). So a batch is built here, into one buffer:
//
//   - rules and regular chains, nearly every message, are encoded directly
//     (appendRule mirrors ruleExprs, which stays the reference: a test
//     checks that both give the same bytes for every kind of rule);
//   - the few other messages (table, sets, map elements, hooked chains) are
//     still serialised by the library, through a Conn whose dialer only
//     records them (nftables.WithTestDial; no system call is made);
//   - the batch asks for one acknowledgement only, that of a last no-op
//     message (NEWTABLE of our table, without NLM_F_EXCL). That is enough:
//     nf_tables processes a batch synchronously within the sendmsg call,
//     keeps going after a failed message, and delivers every error and
//     requested acknowledgement in message order once the batch is committed
//     or aborted, so reading up to that acknowledgement collects every error.

const (
	nlmsgHeaderLen = 16
	msgNewRule     = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWRULE
	msgDelRule     = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELRULE
	msgNewChain    = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWCHAIN
	msgDelChain    = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELCHAIN
	msgNewTable    = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE
	msgNewObj      = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWOBJ
	msgDelObj      = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELOBJ
)

// batch is one nf_tables transaction being built.
type batch struct {
	buf     []byte
	seq     uint32
	lastSeq uint32 // sequence number of the acknowledged last message
	t       *nftables.Table
	sets    sets

	lib     *nftables.Conn // serialises the messages not encoded here
	rec     *recorder
	pending bool // lib holds messages not yet copied into buf
	ud      []byte
}

func newBatch(t *nftables.Table) (*batch, error) {
	b := &batch{t: t, sets: namedSets(t), rec: &recorder{}, buf: make([]byte, 0, 64<<10)}
	c, err := nftables.New(nftables.WithTestDial(b.rec.dial))
	if err != nil {
		return nil, fmt.Errorf("open nftables serialiser: %w", err)
	}
	b.lib = c
	b.msg(unix.NFNL_MSG_BATCH_BEGIN, netlink.Request, 0, unix.NFNL_SUBSYS_NFTABLES)
	return b, nil
}

// conn returns the library's Conn, for messages it serialises; they keep
// their place in the batch.
func (b *batch) conn() *nftables.Conn {
	b.pending = true
	return b.lib
}

// syncLib copies the messages recorded by the library into the batch.
func (b *batch) syncLib() error {
	if !b.pending {
		return nil
	}
	b.pending = false
	b.rec.msgs = b.rec.msgs[:0]
	if err := b.lib.Flush(); err != nil {
		return fmt.Errorf("serialise: %w", err)
	}
	for _, m := range b.rec.msgs {
		switch m.Header.Type {
		case unix.NFNL_MSG_BATCH_BEGIN, unix.NFNL_MSG_BATCH_END:
			continue // the library's own batch delimiters
		}
		start := b.header(uint16(m.Header.Type), m.Header.Flags&^(netlink.Acknowledge|netlink.Echo))
		b.buf = append(b.buf, m.Data...)
		b.end(start)
	}
	return nil
}

// header starts a message; end sets its length.
func (b *batch) header(typ uint16, flags netlink.HeaderFlags) int {
	start := len(b.buf)
	b.seq++
	b.buf = binary.NativeEndian.AppendUint32(b.buf, 0)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(flags))
	b.buf = binary.NativeEndian.AppendUint32(b.buf, b.seq)
	b.buf = binary.NativeEndian.AppendUint32(b.buf, 0) // port ID: the kernel fills it
	return start
}

func (b *batch) end(start int) {
	for len(b.buf)%4 != 0 {
		b.buf = append(b.buf, 0)
	}
	binary.NativeEndian.PutUint32(b.buf[start:], uint32(len(b.buf)-start))
}

// msg starts a message with its nfgenmsg header (family, version, resource
// ID); the caller appends attributes and calls end, or msg is complete.
func (b *batch) msg(typ uint16, flags netlink.HeaderFlags, family byte, resID uint16) int {
	start := b.header(typ, flags)
	b.buf = append(b.buf, family, unix.NFNETLINK_V0)
	b.buf = binary.BigEndian.AppendUint16(b.buf, resID)
	b.end(start)
	return start
}

func (b *batch) attr(typ uint16, data []byte) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(4+len(data)))
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = append(b.buf, data...)
	for len(b.buf)%4 != 0 {
		b.buf = append(b.buf, 0)
	}
}

func (b *batch) attrString(typ uint16, s string) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, uint16(4+len(s)+1))
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = append(b.buf, s...)
	b.buf = append(b.buf, 0)
	for len(b.buf)%4 != 0 {
		b.buf = append(b.buf, 0)
	}
}

func (b *batch) attrU32(typ uint16, v uint32) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, 8)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = binary.BigEndian.AppendUint32(b.buf, v)
}

func (b *batch) attrU64(typ uint16, v uint64) {
	b.buf = binary.NativeEndian.AppendUint16(b.buf, 12)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, typ)
	b.buf = binary.BigEndian.AppendUint64(b.buf, v)
}

// nest starts a nested attribute; the returned function closes it.
func (b *batch) nest(typ uint16) int {
	start := len(b.buf)
	b.buf = append(b.buf, 0, 0, 0, 0)
	binary.NativeEndian.PutUint16(b.buf[start+2:], typ|unix.NLA_F_NESTED)
	return start
}

func (b *batch) unnest(start int) {
	binary.NativeEndian.PutUint16(b.buf[start:], uint16(len(b.buf)-start))
}

// chainMsg encodes NEWCHAIN (regular chain), DELRULE (flush) or DELCHAIN:
// each carries the table and the chain's name only.
func (b *batch) chainMsg(typ uint16, flags netlink.HeaderFlags, name string) {
	start := b.header(typ, flags)
	b.buf = append(b.buf, byte(nftables.TableFamilyINet), unix.NFNETLINK_V0, 0, 0)
	if typ == msgDelRule {
		b.attrString(unix.NFTA_RULE_TABLE, b.t.Name)
		b.attrString(unix.NFTA_RULE_CHAIN, name)
	} else {
		b.attrString(unix.NFTA_CHAIN_TABLE, b.t.Name)
		b.attrString(unix.NFTA_CHAIN_NAME, name)
	}
	b.end(start)
}

func (b *batch) addChain(ch Chain) error {
	if ch.Hook != "" {
		if err := addHookedChain(b.conn(), b.t, ch); err != nil {
			return err
		}
	} else {
		if err := b.syncLib(); err != nil {
			return err
		}
		b.chainMsg(msgNewChain, netlink.Request|netlink.Create, ch.Name)
	}
	return b.addRules(ch.Name, ch.Rules)
}

func (b *batch) flushChain(name string) error {
	if err := b.syncLib(); err != nil {
		return err
	}
	b.chainMsg(msgDelRule, netlink.Request, name)
	return nil
}

func (b *batch) delChain(name string) error {
	if err := b.syncLib(); err != nil {
		return err
	}
	b.chainMsg(msgDelChain, netlink.Request, name)
	return nil
}

func (b *batch) addRules(chain string, rules []Rule) error {
	if err := b.syncLib(); err != nil {
		return err
	}
	for _, r := range rules {
		if err := b.appendRule(chain, r); err != nil {
			return fmt.Errorf("chain %s: rule %s: %w", chain, r.Tag, err)
		}
	}
	return nil
}

// addObject encodes NEWOBJ for o, without NLM_F_EXCL: the kernel leaves
// an existing object of that name and kind as it is (it has no update for
// counters and limits), which is what keeps a counter's count across a
// full resync. It produces the same bytes as the library's AddObj
// (TestEncodeObjectsMatchLibrary).
func (b *batch) addObject(o Object) error {
	if err := b.syncLib(); err != nil {
		return err
	}
	start := b.objMsg(msgNewObj, netlink.Request|netlink.Create, o)
	data := b.nest(unix.NFTA_OBJ_DATA)
	switch o.Kind {
	case ObjCounter:
		b.attrU64(unix.NFTA_COUNTER_BYTES, 0)
		b.attrU64(unix.NFTA_COUNTER_PACKETS, 0)
	case ObjLimit:
		b.attrU64(unix.NFTA_LIMIT_RATE, o.Rate)
		b.attrU64(unix.NFTA_LIMIT_UNIT, 1) // per second
		b.attrU32(unix.NFTA_LIMIT_BURST, o.Burst)
		b.attrU32(unix.NFTA_LIMIT_TYPE, unix.NFT_LIMIT_PKTS)
		b.attrU32(unix.NFTA_LIMIT_FLAGS, 0)
	default:
		return fmt.Errorf("object %s: unknown kind %d", o.Name, o.Kind)
	}
	b.unnest(data)
	b.end(start)
	return nil
}

// delObject encodes DELOBJ for o, as the library's DeleteObject does.
func (b *batch) delObject(o Object) error {
	if err := b.syncLib(); err != nil {
		return err
	}
	start := b.objMsg(msgDelObj, netlink.Request, o)
	b.unnest(b.nest(unix.NFTA_OBJ_DATA))
	b.end(start)
	return nil
}

// objMsg starts an object message: the table, o's name and kind.
func (b *batch) objMsg(typ uint16, flags netlink.HeaderFlags, o Object) int {
	start := b.header(typ, flags)
	b.buf = append(b.buf, byte(nftables.TableFamilyINet), unix.NFNETLINK_V0, 0, 0)
	b.attrString(unix.NFTA_OBJ_TABLE, b.t.Name)
	b.attrString(unix.NFTA_OBJ_NAME, o.Name)
	b.attrU32(unix.NFTA_OBJ_TYPE, uint32(o.Kind))
	return start
}

// finish closes the batch: the acknowledged no-op, then BATCH_END.
func (b *batch) finish() ([]byte, error) {
	if err := b.syncLib(); err != nil {
		return nil, err
	}
	start := b.header(msgNewTable, netlink.Request|netlink.Acknowledge)
	b.buf = append(b.buf, byte(nftables.TableFamilyINet), unix.NFNETLINK_V0, 0, 0)
	b.attrString(unix.NFTA_TABLE_NAME, b.t.Name)
	b.attr(unix.NFTA_TABLE_FLAGS, []byte{0, 0, 0, 0})
	b.end(start)
	b.lastSeq = b.seq
	b.msg(unix.NFNL_MSG_BATCH_END, netlink.Request, 0, unix.NFNL_SUBSYS_NFTABLES)
	return b.buf, nil
}

// appendRule encodes NEWRULE (append) for r; it produces the same bytes as
// the library's AddRule given ruleExprs(r) (TestEncodeRuleMatchesLibrary).
func (b *batch) appendRule(chain string, r Rule) error {
	start := b.header(msgNewRule, netlink.Request|netlink.Create|netlink.HeaderFlags(unix.NLM_F_APPEND))
	b.buf = append(b.buf, byte(nftables.TableFamilyINet), unix.NFNETLINK_V0, 0, 0)
	b.attrString(unix.NFTA_RULE_TABLE, b.t.Name)
	b.attrString(unix.NFTA_RULE_CHAIN, chain)
	list := b.nest(unix.NFTA_RULE_EXPRESSIONS)
	// The matches in the order Rule declares them (preview.go renders the
	// same order), then the action.
	b.matchInterfaces(r)
	if err := b.matchAddresses(r); err != nil {
		return err
	}
	b.matchTransport(r)
	if err := b.dispatch(r); err != nil {
		return err
	}
	if r.Counter != "" {
		b.exprObjref(ObjCounter, r.Counter)
	}
	v := r.Verdict
	switch {
	case r.Log.Chain != "":
		v = Verdict{Kind: "goto", Chain: r.Log.Chain}
	case r.Log.logs():
		if r.Log.Limit != "" {
			b.exprObjref(ObjLimit, r.Log.Limit)
		}
		b.exprLog(r.Log.Group, r.Log.Prefix)
	}
	if err := b.verdict(v); err != nil {
		return err
	}
	b.unnest(list)
	b.ud = userdata.AppendString(b.ud[:0], userdata.TypeComment, r.Tag)
	b.attr(unix.NFTA_RULE_USERDATA, b.ud)
	b.end(start)
	return nil
}

// matchInterfaces encodes iifname/oifname and ct state.
func (b *batch) matchInterfaces(r Rule) {
	if r.IIFName != "" {
		b.exprMeta(expr.MetaKeyIIFNAME)
		b.exprCmp(expr.CmpOpEq, ifnameKey(r.IIFName))
	}
	if r.OIFName != "" {
		b.exprMeta(expr.MetaKeyOIFNAME)
		b.exprCmp(expr.CmpOpEq, ifnameKey(r.OIFName))
	}
	if r.CTEstablished {
		e := b.exprStart("ct")
		b.attrU32(unix.NFTA_CT_KEY, uint32(expr.CtKeySTATE))
		b.attrU32(unix.NFTA_CT_DREG, 1)
		b.exprEnd(e)
		var mask [4]byte
		binary.NativeEndian.PutUint32(mask[:], expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
		b.exprBitwise(mask[:], make([]byte, 4))
		b.exprCmp(expr.CmpOpNeq, make([]byte, 4))
	}
}

// matchAddresses encodes meta nfproto and the source and destination
// prefixes or sets, at their offsets in the IPv4 or IPv6 header.
func (b *batch) matchAddresses(r Rule) error {
	if r.Family != FamilyAny {
		b.exprMeta(expr.MetaKeyNFPROTO)
		b.exprCmp(expr.CmpOpEq, []byte{byte(r.Family)})
	}
	saddr, daddr, n := uint32(12), uint32(16), uint32(4)
	if r.Family == FamilyIPv6 {
		saddr, daddr, n = 8, 24, 16
	}
	if r.SAddr.IsValid() {
		b.exprPrefix(r.SAddr, saddr)
	}
	if err := b.matchSet(r, r.SAddrSet, saddr, n); err != nil {
		return err
	}
	if r.DAddr.IsValid() {
		b.exprPrefix(r.DAddr, daddr)
	}
	return b.matchSet(r, r.DAddrSet, daddr, n)
}

// matchSet loads the address at offset and looks it up in the named set,
// as nft does for `ip saddr @set`.
func (b *batch) matchSet(r Rule, name string, offset, n uint32) error {
	if name == "" {
		return nil
	}
	if r.Family != FamilyIPv4 && r.Family != FamilyIPv6 {
		return fmt.Errorf("set %s matched without a family", name)
	}
	set, ok := b.sets[name]
	if !ok {
		return fmt.Errorf("unknown set %s", name)
	}
	b.exprPayload(expr.PayloadBaseNetworkHeader, offset, n)
	b.exprLookup(set, false)
	return nil
}

// matchTransport encodes meta l4proto and the destination port or range.
func (b *batch) matchTransport(r Rule) {
	if r.L4 != L4Any {
		b.exprMeta(expr.MetaKeyL4PROTO)
		b.exprCmp(expr.CmpOpEq, []byte{byte(r.L4)})
	}
	if r.DPortFrom == 0 {
		return
	}
	var port [2]byte
	b.exprPayload(expr.PayloadBaseTransportHeader, 2, 2)
	binary.BigEndian.PutUint16(port[:], r.DPortFrom)
	if r.DPortTo == 0 {
		b.exprCmp(expr.CmpOpEq, port[:])
		return
	}
	b.exprCmp(expr.CmpOpGte, port[:])
	binary.BigEndian.PutUint16(port[:], r.DPortTo)
	b.exprCmp(expr.CmpOpLte, port[:])
}

// dispatch encodes the verdict-map lookups of the base chains.
func (b *batch) dispatch(r Rule) error {
	for _, vm := range []struct {
		key  expr.MetaKey
		name string
	}{{expr.MetaKeyIIFNAME, r.VMapIIF}, {expr.MetaKeyOIFNAME, r.VMapOIF}} {
		if vm.name == "" {
			continue
		}
		set, ok := b.sets[vm.name]
		if !ok {
			return fmt.Errorf("unknown map %s", vm.name)
		}
		b.exprMeta(vm.key)
		b.exprLookup(set, true)
	}
	return nil
}

// verdict encodes what a matching rule does.
func (b *batch) verdict(v Verdict) error {
	switch v.Kind {
	case "accept":
		b.exprVerdict(expr.VerdictAccept, "")
	case "drop":
		b.exprVerdict(expr.VerdictDrop, "")
	case "jump":
		b.exprVerdict(expr.VerdictJump, v.Chain)
	case "goto":
		b.exprVerdict(expr.VerdictGoto, v.Chain)
	case "":
	default:
		return fmt.Errorf("unknown verdict %q", v.Kind)
	}
	return nil
}

// exprStart opens one element of the expression list: its name, then its
// data, which the caller appends before exprEnd.
func (b *batch) exprStart(name string) [2]int {
	elem := b.nest(unix.NFTA_LIST_ELEM)
	b.attrString(unix.NFTA_EXPR_NAME, name)
	return [2]int{elem, b.nest(unix.NFTA_EXPR_DATA)}
}

func (b *batch) exprEnd(e [2]int) {
	b.unnest(e[1])
	b.unnest(e[0])
}

func (b *batch) exprMeta(key expr.MetaKey) {
	e := b.exprStart("meta")
	b.attrU32(unix.NFTA_META_KEY, uint32(key))
	b.attrU32(unix.NFTA_META_DREG, 1)
	b.exprEnd(e)
}

func (b *batch) exprCmp(op expr.CmpOp, data []byte) {
	e := b.exprStart("cmp")
	b.attrU32(unix.NFTA_CMP_SREG, 1)
	b.attrU32(unix.NFTA_CMP_OP, uint32(op))
	d := b.nest(unix.NFTA_CMP_DATA)
	b.attr(unix.NFTA_DATA_VALUE, data)
	b.unnest(d)
	b.exprEnd(e)
}

func (b *batch) exprPayload(base expr.PayloadBase, offset, n uint32) {
	e := b.exprStart("payload")
	b.attrU32(unix.NFTA_PAYLOAD_DREG, 1)
	b.attrU32(unix.NFTA_PAYLOAD_BASE, uint32(base))
	b.attrU32(unix.NFTA_PAYLOAD_OFFSET, offset)
	b.attrU32(unix.NFTA_PAYLOAD_LEN, n)
	b.exprEnd(e)
}

func (b *batch) exprBitwise(mask, xor []byte) {
	e := b.exprStart("bitwise")
	b.attrU32(unix.NFTA_BITWISE_SREG, 1)
	b.attrU32(unix.NFTA_BITWISE_DREG, 1)
	b.attrU32(unix.NFTA_BITWISE_LEN, uint32(len(mask)))
	m := b.nest(unix.NFTA_BITWISE_MASK)
	b.attr(unix.NFTA_DATA_VALUE, mask)
	b.unnest(m)
	x := b.nest(unix.NFTA_BITWISE_XOR)
	b.attr(unix.NFTA_DATA_VALUE, xor)
	b.unnest(x)
	b.exprEnd(e)
}

// exprPrefix matches the network header at offset against p (see
// prefixMatch).
func (b *batch) exprPrefix(p netip.Prefix, offset uint32) {
	var a [16]byte
	addr := a[:p.Addr().BitLen()/8]
	if p.Addr().Is4() {
		a4 := p.Addr().As4()
		copy(addr, a4[:])
	} else {
		a16 := p.Addr().As16()
		copy(addr, a16[:])
	}
	if p.Bits()%8 == 0 {
		// As nft does: a byte-aligned prefix loads and compares only its
		// bytes, one expression fewer to set up and to run per packet.
		n := uint32(p.Bits() / 8)
		b.exprPayload(expr.PayloadBaseNetworkHeader, offset, n)
		b.exprCmp(expr.CmpOpEq, addr[:n])
		return
	}
	n := uint32(len(addr))
	b.exprPayload(expr.PayloadBaseNetworkHeader, offset, n)
	var m, zero [16]byte
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	b.exprBitwise(m[:n], zero[:n])
	b.exprCmp(expr.CmpOpEq, addr)
}

func (b *batch) exprLookup(set *nftables.Set, verdictMap bool) {
	e := b.exprStart("lookup")
	b.attrU32(unix.NFTA_LOOKUP_SREG, 1)
	if verdictMap {
		b.attrU32(unix.NFTA_LOOKUP_DREG, 0)
	}
	b.attrString(unix.NFTA_LOOKUP_SET, set.Name)
	b.attrU32(unix.NFTA_LOOKUP_SET_ID, set.ID)
	b.exprEnd(e)
}

// exprObjref refers to a named object. The name goes without a NUL, as
// the library sends it (the kernel takes either).
func (b *batch) exprObjref(kind ObjectKind, name string) {
	e := b.exprStart("objref")
	b.attrU32(unix.NFTA_OBJREF_IMM_TYPE, uint32(kind))
	b.attr(unix.NFTA_OBJREF_IMM_NAME, []byte(name))
	b.exprEnd(e)
}

// exprLog sends the packet to NFLOG group with prefix.
func (b *batch) exprLog(group uint16, prefix string) {
	e := b.exprStart("log")
	b.buf = binary.NativeEndian.AppendUint16(b.buf, 6)
	b.buf = binary.NativeEndian.AppendUint16(b.buf, unix.NFTA_LOG_GROUP)
	b.buf = binary.BigEndian.AppendUint16(b.buf, group)
	b.buf = append(b.buf, 0, 0)
	b.attrString(unix.NFTA_LOG_PREFIX, prefix)
	b.exprEnd(e)
}

func (b *batch) exprVerdict(kind expr.VerdictKind, chain string) {
	e := b.exprStart("immediate")
	b.attrU32(unix.NFTA_IMMEDIATE_DREG, unix.NFT_REG_VERDICT)
	d := b.nest(unix.NFTA_IMMEDIATE_DATA)
	v := b.nest(unix.NFTA_DATA_VERDICT)
	b.attrU32(unix.NFTA_VERDICT_CODE, uint32(kind))
	if chain != "" {
		b.attrString(unix.NFTA_VERDICT_CHAIN, chain)
	}
	b.unnest(v)
	b.unnest(d)
	b.exprEnd(e)
}

// recorder captures the messages an nftables.Conn would send.
type recorder struct {
	msgs []netlink.Message
}

// ackMsg is a successful acknowledgement (an nlmsgerr with errno 0).
var ackMsg = netlink.Message{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}

func (r *recorder) dial(req []netlink.Message) ([]netlink.Message, error) {
	if req == nil {
		// Flush waits for one acknowledgement per message it recorded.
		return []netlink.Message{ackMsg}, nil
	}
	r.msgs = append(r.msgs, req...)
	return nil, nil
}

// ackTimeout bounds the wait for the final acknowledgement when the context
// has no deadline. The kernel has answered before sendmsg returns, so it is
// only reached when it answered something unexpected.
const ackTimeout = 10 * time.Second

// batchError is what nf_tables answered to a batch it refused: the
// socket has read every answer and may be reused.
type batchError struct{ err error }

func (e *batchError) Error() string { return e.err.Error() }
func (e *batchError) Unwrap() error { return e.err }

// send sends the finished batch to nf_tables over c in one sendmsg and
// returns the kernel's errors, if any, as a *batchError. Any other error
// leaves c in an unknown state.
func (b *batch) send(ctx context.Context, c *netlink.Conn) error {
	buf, err := b.finish()
	if err != nil {
		return err
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	var serr error
	werr := raw.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), buf, nil, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}, 0)
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err := errors.Join(werr, serr); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(ackTimeout)
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	defer c.SetReadDeadline(time.Time{}) // the socket is used again
	var errs error
	for {
		replies, err := c.Receive()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return errors.Join(errs, fmt.Errorf("no acknowledgement from nf_tables: %w", err))
			}
			// One error per refused message; the batch was aborted.
			errs = errors.Join(errs, err)
			continue
		}
		for _, m := range replies {
			if m.Header.Type == netlink.Error && m.Header.Sequence == b.lastSeq {
				if errs != nil {
					return &batchError{errs}
				}
				return nil
			}
		}
	}
}
