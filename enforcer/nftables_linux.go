//go:build linux

package enforcer

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// NFTables is the backend that enforces: it sends Rulesets to the kernel's
// nf_tables over netlink, each apply as one batch (one Conn.Flush), so the
// kernel holds either the old ruleset or the new one.
type NFTables struct {
	opts options

	mu sync.Mutex
	// verifiedFor/verifiedGen remember that the kernel, at nf_tables
	// generation verifiedGen, held verifiedFor: while the generation does
	// not move, nobody has changed any table and Verify need not dump.
	verifiedFor *Ruleset
	verifiedGen uint32

	// testHookBatch, when set (tests only), may add messages to a batch
	// before it is sent, e.g. one the kernel refuses.
	testHookBatch func(c *nftables.Conn, t *nftables.Table)
}

// NewNFTables returns the netlink backend after checking that this process
// may use nf_tables (in the namespace given by WithNetNS, if any): it lists
// the tables, which needs CAP_NET_ADMIN and a kernel with nf_tables.
// The error wraps ErrUnavailable.
func NewNFTables(opts ...Option) (*NFTables, error) {
	n := &NFTables{opts: buildOptions(opts)}
	c, err := n.conn()
	if err == nil {
		_, err = c.ListTablesOfFamily(nftables.TableFamilyINet)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: list nftables tables: %w", ErrUnavailable, err)
	}
	return n, nil
}

// Detect reports whether the nftables backend can be used, and if not why
// (the error wraps ErrUnavailable).
func Detect(opts ...Option) error {
	_, err := NewNFTables(opts...)
	return err
}

// socketBuffer is the netlink socket buffer size asked for. A full resync
// of 10,000 rules is one batch of several MiB, one sendmsg: the kernel
// refuses a message larger than the send buffer (EMSGSIZE), and the
// per-message acknowledgements overflow a default receive buffer (ENOBUFS).
const socketBuffer = 64 << 20

// bigBuffers raises the socket's buffers, beyond net.core.[rw]mem_max when
// the process may (CAP_NET_ADMIN, which the nftables backend needs anyway).
func bigBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket buffers: %w", err)
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], socketBuffer); e != nil {
				if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], socketBuffer); e != nil {
					serr = e
				}
			}
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("netlink socket buffers: %w", err)
	}
	return nil
}

func (n *NFTables) conn() (*nftables.Conn, error) {
	o := []nftables.ConnOption{nftables.WithSockOptions(bigBuffers)}
	if n.opts.netnsFD >= 0 {
		o = append(o, nftables.WithNetNSFd(n.opts.netnsFD))
	}
	c, err := nftables.New(o...)
	if err != nil {
		return nil, fmt.Errorf("open nftables conn: %w", err)
	}
	return c, nil
}

func table() *nftables.Table {
	return &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
}

// Mode implements Backend.
func (n *NFTables) Mode() (string, string) { return ModeNFTables, "" }

// Apply implements Backend. With prev nil, the table is deleted and rebuilt
// in the same batch (a full resync); otherwise only the chains and map
// elements that differ are sent: a changed chain is flushed and refilled.
func (n *NFTables) Apply(ctx context.Context, prev, next *Ruleset) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.conn()
	if err != nil {
		return err
	}
	t := table()
	if prev == nil {
		err = fullBatch(c, t, next)
	} else {
		d := diffRulesets(prev, next)
		if d.empty() {
			return nil
		}
		err = incrementalBatch(c, t, d)
	}
	if err != nil {
		return fmt.Errorf("build batch: %w", err)
	}
	if n.testHookBatch != nil {
		n.testHookBatch(c, t)
	}
	n.verifiedFor = nil
	if err := c.Flush(); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	return nil
}

// sets is the batch's view of the table's named sets, for lookups.
type sets map[string]*nftables.Set

func namedSets(t *nftables.Table) sets {
	return sets{
		setSMTPPorts: {Table: t, Name: setSMTPPorts, KeyType: nftables.TypeInetService},
		// ifname keys are strings: host byte order, or nft lists them as "".
		mapToServer:   {Table: t, Name: mapToServer, IsMap: true, KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict, KeyByteOrder: binaryutil.NativeEndian},
		mapFromServer: {Table: t, Name: mapFromServer, IsMap: true, KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict, KeyByteOrder: binaryutil.NativeEndian},
	}
}

func fullBatch(c *nftables.Conn, t *nftables.Table, rs *Ruleset) error {
	// Adding before deleting makes the delete valid whether or not the table
	// exists; the whole batch commits or nothing does.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	s := namedSets(t)
	var ports []nftables.SetElement
	for _, p := range smtpPorts() {
		ports = append(ports, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p)})
	}
	if err := c.AddSet(s[setSMTPPorts], ports); err != nil {
		return fmt.Errorf("add set %s: %w", setSMTPPorts, err)
	}
	for _, name := range []string{mapToServer, mapFromServer} {
		if err := c.AddSet(s[name], nil); err != nil {
			return fmt.Errorf("add map %s: %w", name, err)
		}
	}
	// Chains that are jumped to must exist before the jumps.
	for _, g := range rs.Groups {
		for _, ch := range []Chain{g.In, g.Out} {
			if err := addChain(c, t, s, ch); err != nil {
				return err
			}
		}
	}
	if err := addElems(c, s[mapToServer], rs.ToServer); err != nil {
		return err
	}
	if err := addElems(c, s[mapFromServer], rs.FromServer); err != nil {
		return err
	}
	for _, ch := range append(baseChains(), rs.HostIn, rs.HostOut) {
		if err := addChain(c, t, s, ch); err != nil {
			return err
		}
	}
	return nil
}

func incrementalBatch(c *nftables.Conn, t *nftables.Table, d rulesetDiff) error {
	s := namedSets(t)
	for _, ch := range d.addChains {
		if err := addChain(c, t, s, ch); err != nil {
			return err
		}
	}
	for _, ch := range d.replaceChains {
		nc := &nftables.Chain{Name: ch.Name, Table: t}
		c.FlushChain(nc)
		if err := addRules(c, t, nc, s, ch.Rules); err != nil {
			return err
		}
	}
	// Deleting before adding lets an element change its verdict in one batch.
	if err := delElems(c, s[mapToServer], d.delTo); err != nil {
		return err
	}
	if err := delElems(c, s[mapFromServer], d.delFrom); err != nil {
		return err
	}
	if err := addElems(c, s[mapToServer], d.addTo); err != nil {
		return err
	}
	if err := addElems(c, s[mapFromServer], d.addFrom); err != nil {
		return err
	}
	// Last: nothing may still jump to a chain when it is deleted.
	for _, name := range d.delChains {
		nc := &nftables.Chain{Name: name, Table: t}
		c.FlushChain(nc)
		c.DelChain(nc)
	}
	return nil
}

func addChain(c *nftables.Conn, t *nftables.Table, s sets, ch Chain) error {
	nc := &nftables.Chain{Name: ch.Name, Table: t}
	if ch.Hook != "" {
		policy := nftables.ChainPolicyAccept
		nc.Type = nftables.ChainTypeFilter
		nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(ch.Priority))
		nc.Policy = &policy
		switch ch.Hook {
		case "forward":
			nc.Hooknum = nftables.ChainHookForward
		case "input":
			nc.Hooknum = nftables.ChainHookInput
		case "output":
			nc.Hooknum = nftables.ChainHookOutput
		default:
			return fmt.Errorf("chain %s: unknown hook %q", ch.Name, ch.Hook)
		}
	}
	c.AddChain(nc)
	return addRules(c, t, nc, s, ch.Rules)
}

func addRules(c *nftables.Conn, t *nftables.Table, nc *nftables.Chain, s sets, rules []Rule) error {
	for _, r := range rules {
		exprs, err := ruleExprs(r, s)
		if err != nil {
			return fmt.Errorf("chain %s: rule %s: %w", nc.Name, r.Tag, err)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: nc, Exprs: exprs, UserData: userdata.AppendString(nil, userdata.TypeComment, r.Tag)})
	}
	return nil
}

func ifnameKey(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func elems(list []MapElem) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(list))
	for _, e := range list {
		out = append(out, nftables.SetElement{Key: ifnameKey(e.IfName), VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: e.Chain}})
	}
	return out
}

// elemChunk bounds the elements per message: they are nested in one
// netlink attribute whose length is 16 bits, so a few hundred elements
// would silently wrap it (the kernel then takes only the first ones).
const elemChunk = 128

func addElems(c *nftables.Conn, s *nftables.Set, list []MapElem) error {
	for part := range slices.Chunk(list, elemChunk) {
		if err := c.SetAddElements(s, elems(part)); err != nil {
			return fmt.Errorf("add elements to %s: %w", s.Name, err)
		}
	}
	return nil
}

func delElems(c *nftables.Conn, s *nftables.Set, list []MapElem) error {
	for part := range slices.Chunk(list, elemChunk) {
		if err := c.SetDeleteElements(s, elems(part)); err != nil {
			return fmt.Errorf("delete elements from %s: %w", s.Name, err)
		}
	}
	return nil
}

// ruleExprs renders a Rule as the expressions nft itself would generate for
// its text form (see Rule.String), so that `nft list` shows both the same.
func ruleExprs(r Rule, s sets) ([]expr.Any, error) {
	var e []expr.Any
	cmpEq := func(data []byte) *expr.Cmp { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data} }
	if r.IIFName != "" {
		e = append(e, &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, cmpEq(ifnameKey(r.IIFName)))
	}
	if r.OIFName != "" {
		e = append(e, &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, cmpEq(ifnameKey(r.OIFName)))
	}
	if r.CTEstablished {
		e = append(e,
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)})
	}
	if r.Family != FamilyAny {
		e = append(e, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, cmpEq([]byte{byte(r.Family)}))
	}
	// IPv4 saddr/daddr at network header +12/+16, IPv6 at +8/+24.
	if r.SAddr.IsValid() {
		off := uint32(12)
		if r.Family == FamilyIPv6 {
			off = 8
		}
		e = append(e, prefixMatch(r.SAddr, off)...)
	}
	if r.DAddr.IsValid() {
		off := uint32(16)
		if r.Family == FamilyIPv6 {
			off = 24
		}
		e = append(e, prefixMatch(r.DAddr, off)...)
	}
	if r.L4 != L4Any {
		e = append(e, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, cmpEq([]byte{byte(r.L4)}))
	}
	dport := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	switch {
	case r.DPortSet != "":
		set, ok := s[r.DPortSet]
		if !ok {
			return nil, fmt.Errorf("unknown set %s", r.DPortSet)
		}
		e = append(e, dport, &expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID})
	case r.DPortFrom != 0 && r.DPortTo != 0:
		e = append(e, dport,
			&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.DPortFrom)},
			&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.DPortTo)})
	case r.DPortFrom != 0:
		e = append(e, dport, cmpEq(binaryutil.BigEndian.PutUint16(r.DPortFrom)))
	}
	for _, vm := range []struct {
		key  expr.MetaKey
		name string
	}{{expr.MetaKeyIIFNAME, r.VMapIIF}, {expr.MetaKeyOIFNAME, r.VMapOIF}} {
		if vm.name == "" {
			continue
		}
		set, ok := s[vm.name]
		if !ok {
			return nil, fmt.Errorf("unknown map %s", vm.name)
		}
		e = append(e, &expr.Meta{Key: vm.key, Register: 1},
			&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: set.Name, SetID: set.ID})
	}
	if r.Counter {
		e = append(e, &expr.Counter{})
	}
	switch r.Verdict.Kind {
	case "accept":
		e = append(e, &expr.Verdict{Kind: expr.VerdictAccept})
	case "drop":
		e = append(e, &expr.Verdict{Kind: expr.VerdictDrop})
	case "jump":
		e = append(e, &expr.Verdict{Kind: expr.VerdictJump, Chain: r.Verdict.Chain})
	case "":
	default:
		return nil, fmt.Errorf("unknown verdict %q", r.Verdict.Kind)
	}
	return e, nil
}

func prefixMatch(p netip.Prefix, offset uint32) []expr.Any {
	addr := p.Addr().AsSlice()
	n := uint32(len(addr))
	load := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n}
	if p.Bits() == int(n*8) {
		return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr}}
	}
	mask := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{load,
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr},
	}
}

// Verify implements Backend. It costs one netlink round trip while the
// kernel's nf_tables generation has not moved since the last verification;
// otherwise it dumps the table's rules (one dump) and the two maps and
// compares, per chain, the sequence of rule tags and the map elements.
func (n *NFTables) Verify(ctx context.Context, rs *Ruleset) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	gen, err := getGen(n.opts.netnsFD)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if n.verifiedFor == rs && n.verifiedGen == gen {
		return nil
	}
	rules, err := dumpRules(n.opts.netnsFD, "")
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	got := map[string][]string{}
	for _, r := range rules {
		got[r.chain] = append(got[r.chain], r.tag)
	}
	want := map[string][]string{}
	for _, ch := range allChains(rs) {
		for _, r := range ch.Rules {
			want[ch.Name] = append(want[ch.Name], r.Tag)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("%w: table holds %d non-empty chains, want %d", ErrDrift, len(got), len(want))
	}
	for name, tags := range want {
		if !slices.Equal(got[name], tags) {
			return fmt.Errorf("%w: chain %s holds %d rules %v, want %d", ErrDrift, name, len(got[name]), got[name], len(tags))
		}
	}
	for name, list := range map[string][]MapElem{mapToServer: rs.ToServer, mapFromServer: rs.FromServer} {
		gotEl, err := dumpMap(n.opts.netnsFD, name)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrDrift, err)
		}
		wantEl := make(map[string]string, len(list))
		for _, e := range list {
			wantEl[e.IfName] = e.Chain
		}
		if !mapsEqual(gotEl, wantEl) {
			return fmt.Errorf("%w: map %s holds %d elements, want %d", ErrDrift, name, len(gotEl), len(wantEl))
		}
	}
	n.verifiedFor, n.verifiedGen = rs, gen
	return nil
}

func allChains(rs *Ruleset) []Chain {
	var out []Chain
	for _, g := range rs.Groups {
		out = append(out, g.In, g.Out)
	}
	return append(append(out, baseChains()...), rs.HostIn, rs.HostOut)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func cString(b []byte) string {
	if i := slices.Index(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Counters implements Backend with one rule dump per chain.
func (n *NFTables) Counters(ctx context.Context, chains ...string) (map[string]Counter, error) {
	out := map[string]Counter{}
	for _, ch := range chains {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rules, err := dumpRules(n.opts.netnsFD, ch)
		if err != nil {
			return nil, fmt.Errorf("counters of chain %s: %w", ch, err)
		}
		for _, r := range rules {
			if r.counter != nil {
				out[r.tag] = *r.counter
			}
		}
	}
	return out, nil
}

// Remove implements Backend: it deletes the table if it exists, in one batch.
func (n *NFTables) Remove(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c, err := n.conn()
	if err != nil {
		return err
	}
	t := table()
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove table inet %s: %w", TableName, err)
	}
	n.verifiedFor = nil
	return nil
}

// setTestHook sets testHookBatch; tests only.
func (n *NFTables) setTestHook(f func(c *nftables.Conn, t *nftables.Table)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.testHookBatch = f
}
