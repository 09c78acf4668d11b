//go:build linux

package enforcer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
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
	// nl is the netlink socket of applies and generation checks, kept
	// open: closing a netfilter socket makes the kernel wait for the
	// previous transaction's garbage to be freed after an RCU grace period
	// (nf_tables' NETLINK_URELEASE handler flushes its destroy work), which
	// cost every apply 10-20 ms when each opened and closed its own.
	nl *netlink.Conn

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
	c, err := n.libConn()
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

// libConn returns a library Conn, for the few requests sent through it.
func (n *NFTables) libConn() (*nftables.Conn, error) {
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
	t := table()
	b, err := newBatch(t)
	if err != nil {
		return err
	}
	if prev == nil {
		err = fullBatch(b, next)
	} else {
		d := diffRulesets(prev, next)
		if d.empty() {
			if n.verifiedFor == prev {
				n.verifiedFor = next // the same rules: verified as well
			}
			return nil
		}
		err = incrementalBatch(b, d)
	}
	if err != nil {
		return fmt.Errorf("build batch: %w", err)
	}
	if n.testHookBatch != nil {
		n.testHookBatch(b.conn(), t)
	}
	c, err := n.conn()
	if err != nil {
		return err
	}
	// When the kernel is known to hold prev (verified, and no transaction
	// since) or the table is replaced whole, and no other transaction
	// comes between, the kernel holds next after this one: the next Verify
	// then costs one round trip instead of a dump of the whole table
	// (185 ms at 11,000 rules, holding n.mu against applies).
	before, err := getGen(c)
	if err != nil {
		n.closeConn()
		return fmt.Errorf("send batch: %w", err)
	}
	known := prev == nil || (n.verifiedFor == prev && n.verifiedGen == before)
	n.verifiedFor = nil
	if err := b.send(ctx, c); err != nil {
		if !errors.As(err, new(*batchError)) {
			n.closeConn() // its state is unknown: the next apply opens another
		}
		return fmt.Errorf("send batch: %w", err)
	}
	if after, err := getGen(c); err != nil {
		n.closeConn()
	} else if known && after == before+1 {
		n.verifiedFor, n.verifiedGen = next, after
	}
	return nil
}

// conn returns the backend's netlink socket, opening it if needed; n.mu
// must be held.
func (n *NFTables) conn() (*netlink.Conn, error) {
	if n.nl != nil {
		return n.nl, nil
	}
	c, err := dialNetfilter(n.opts.netnsFD)
	if err != nil {
		return nil, err
	}
	if err := bigBuffers(c); err != nil {
		c.Close()
		return nil, err
	}
	n.nl = c
	return c, nil
}

func (n *NFTables) closeConn() {
	if n.nl != nil {
		_ = n.nl.Close()
		n.nl = nil
	}
}

// Close releases the backend's netlink socket. The ruleset stays in the
// kernel. The backend may still be used: it opens another when needed.
func (n *NFTables) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closeConn()
	return nil
}

// sets is the batch's view of the table's named sets, for lookups.
type sets map[string]*nftables.Set

func namedSets(t *nftables.Table) sets {
	return sets{
		// ifname keys are strings: host byte order, or nft lists them as "".
		mapToServer:   {Table: t, Name: mapToServer, IsMap: true, KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict, KeyByteOrder: binaryutil.NativeEndian},
		mapFromServer: {Table: t, Name: mapFromServer, IsMap: true, KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict, KeyByteOrder: binaryutil.NativeEndian},
	}
}

func fullBatch(b *batch, rs *Ruleset) error {
	// About 500 bytes a rule: grow the buffer once rather than by doubling.
	n := len(rs.HostIn.Rules) + len(rs.HostOut.Rules) + 2*len(rs.ToServer)
	for _, g := range rs.Groups {
		n += len(g.In.Rules) + len(g.Out.Rules)
	}
	b.buf = slices.Grow(b.buf, 512*n)
	c, t, s := b.conn(), b.t, b.sets
	// Adding before deleting makes the delete valid whether or not the table
	// exists; the whole batch commits or nothing does.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	for _, name := range []string{mapToServer, mapFromServer} {
		if err := c.AddSet(s[name], nil); err != nil {
			return fmt.Errorf("add map %s: %w", name, err)
		}
	}
	// Chains that are jumped to must exist before the jumps.
	for _, g := range rs.Groups {
		for _, ch := range []Chain{g.In, g.Out} {
			if err := b.addChain(ch); err != nil {
				return err
			}
		}
	}
	if err := addElems(b.conn(), s[mapToServer], rs.ToServer); err != nil {
		return err
	}
	if err := addElems(b.conn(), s[mapFromServer], rs.FromServer); err != nil {
		return err
	}
	for _, ch := range append(baseChains(), rs.HostIn, rs.HostOut) {
		if err := b.addChain(ch); err != nil {
			return err
		}
	}
	return nil
}

func incrementalBatch(b *batch, d rulesetDiff) error {
	s := b.sets
	for _, ch := range d.addChains {
		if err := b.addChain(ch); err != nil {
			return err
		}
	}
	for _, ch := range d.replaceChains {
		if err := b.flushChain(ch.Name); err != nil {
			return err
		}
		if err := b.addRules(ch.Name, ch.Rules); err != nil {
			return err
		}
	}
	// Deleting before adding lets an element change its verdict in one batch.
	if err := delElems(b.conn(), s[mapToServer], d.delTo); err != nil {
		return err
	}
	if err := delElems(b.conn(), s[mapFromServer], d.delFrom); err != nil {
		return err
	}
	if err := addElems(b.conn(), s[mapToServer], d.addTo); err != nil {
		return err
	}
	if err := addElems(b.conn(), s[mapFromServer], d.addFrom); err != nil {
		return err
	}
	// Last: nothing may still jump to a chain when it is deleted.
	for _, name := range d.delChains {
		if err := b.flushChain(name); err != nil {
			return err
		}
		if err := b.delChain(name); err != nil {
			return err
		}
	}
	return nil
}

// addHookedChain adds a base chain (its rules are added separately).
func addHookedChain(c *nftables.Conn, t *nftables.Table, ch Chain) error {
	nc := &nftables.Chain{Name: ch.Name, Table: t}
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
	c.AddChain(nc)
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
	c, err := n.conn()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	gen, err := getGen(c)
	if err != nil {
		n.closeConn()
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
	c, err := n.libConn()
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
