//go:build linux

package enforcer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

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

	// rmu guards rd, the socket counters are read and reset on: reads
	// neither wait for nor delay an apply.
	rmu sync.Mutex
	rd  *netlink.Conn

	// testHookBatch, when set (tests only), may add messages to a batch
	// before it is sent, e.g. one the kernel refuses.
	testHookBatch func(c *nftables.Conn, t *nftables.Table)
	// lastSend is how long the last batch took from sendmsg to the
	// kernel's acknowledgement: the kernel's share of an apply, which
	// benchmarks quote apart from ours.
	lastSend time.Duration
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

// Apply implements Backend. With prev nil, the table is rebuilt whole in
// one batch (a full resync) that keeps its counters (see fullBatch);
// otherwise only the chains, objects and map elements that differ are
// sent: a changed chain is flushed and refilled.
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
	b.register(next.Sets)
	c, err := n.conn()
	if err != nil {
		return err
	}
	if prev == nil {
		var cur tableState
		if cur, err = dumpTable(c); err != nil {
			n.closeConn()
			return fmt.Errorf("full resync: read the table: %w", err)
		}
		err = fullBatch(b, next, cur)
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
	sent := time.Now()
	err = b.send(ctx, c)
	n.lastSend = time.Since(sent)
	if err != nil {
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
	n.closeConn()
	n.mu.Unlock()
	n.rmu.Lock()
	if n.rd != nil {
		_ = n.rd.Close()
		n.rd = nil
	}
	n.rmu.Unlock()
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

// fullBatch builds the batch of a full resync over cur, what the table
// held just before. Deleting and re-adding the table, as a simple full
// resync would, would also delete its counter objects; instead, in the
// same one batch:
//
//   - the table is added (nothing happens if it exists),
//   - its rules are all deleted (a flush of the table), then every named
//     set (the maps, whose elements jump to chains) and every chain,
//     whoever added them,
//   - the objects that no rule of rs uses are deleted,
//   - every object of rs is added: the kernel leaves an existing counter
//     (or limit) of that name as it is, count included,
//   - then the maps, chains, rules and elements of rs as before.
//
// The kernel applies it whole or not at all, and nothing outside our table
// is touched. A change by someone else between the read of cur and the
// batch can make the kernel refuse it (a chain already gone): the
// reconciler then retries within a second, with a new read.
func fullBatch(b *batch, rs *Ruleset, cur tableState) error {
	// About 500 bytes a rule: grow the buffer once rather than by doubling.
	n := len(rs.HostIn.Rules) + len(rs.HostOut.Rules) + 2*len(rs.ToServer)
	for _, g := range rs.Groups {
		n += len(g.In.Rules) + len(g.Out.Rules) + 2*len(g.LogChains) + len(g.Objects)/4
	}
	b.buf = slices.Grow(b.buf, 512*n)
	c, t, s := b.conn(), b.t, b.sets
	c.AddTable(t)
	if len(cur.chains) > 0 {
		c.FlushTable(t)
	}
	for _, name := range cur.sets {
		c.DelSet(&nftables.Set{Table: t, Name: name})
	}
	for _, name := range cur.chains {
		if err := b.delChain(name); err != nil {
			return err
		}
	}
	want := map[Object]bool{}
	for _, g := range rs.Groups {
		for _, o := range g.Objects {
			want[Object{Kind: o.Kind, Name: o.Name}] = true
		}
	}
	for _, o := range cur.objects {
		if !want[o] {
			if err := b.delObject(o); err != nil {
				return err
			}
		}
	}
	for _, g := range rs.Groups {
		for _, o := range g.Objects {
			if err := b.addObject(o); err != nil {
				return err
			}
		}
	}
	// Sets before the rules that match them, and before the maps, as the
	// preview text declares them (nft lists sets in the order they came).
	for _, set := range rs.Sets {
		if err := b.addSet(set); err != nil {
			return err
		}
	}
	c = b.conn()
	for _, name := range []string{mapToServer, mapFromServer} {
		if err := c.AddSet(s[name], nil); err != nil {
			return fmt.Errorf("add map %s: %w", name, err)
		}
	}
	// Chains that are jumped to must exist before the jumps.
	for _, g := range rs.Groups {
		for _, ch := range append(slices.Clip(g.LogChains), g.In, g.Out) {
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

// incrementalBatch builds the batch of d, in the order rulesetDiff says.
func incrementalBatch(b *batch, d rulesetDiff) error {
	s := b.sets
	for _, o := range d.addObjects {
		if err := b.addObject(o); err != nil {
			return err
		}
	}
	for _, set := range d.addSets {
		if err := b.addSet(set); err != nil {
			return err
		}
	}
	// Deleted before added: an interval set's element may go from one
	// prefix to another (see elemChange), and the interval tree checks
	// what it adds against what stays.
	for _, ed := range d.setElems {
		del, add := elemChange(ed)
		if err := b.setElems(msgDelSetElem, s[ed.set.Name], del); err != nil {
			return err
		}
		if err := b.setElems(msgNewSetElem, s[ed.set.Name], add); err != nil {
			return err
		}
	}
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
	// Flushed first, all of them: nothing may still jump to a chain when
	// it is deleted, and a group's chains go to its log chains.
	for _, name := range d.delChains {
		if err := b.flushChain(name); err != nil {
			return err
		}
	}
	for _, name := range d.delChains {
		if err := b.delChain(name); err != nil {
			return err
		}
	}
	// The rules that matched these sets are gone by now.
	for _, name := range d.delSets {
		b.delSet(name)
	}
	// Last: no rule uses them any more.
	for _, o := range d.delObjects {
		if err := b.delObject(o); err != nil {
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
	if err := verifySets(c, n.opts.netnsFD, rs); err != nil {
		return err
	}
	n.verifiedFor, n.verifiedGen = rs, gen
	return nil
}

// verifySets compares the table's named sets with the maps and rs.Sets,
// and the elements of each of rs.Sets.
func verifySets(c *netlink.Conn, netnsFD int, rs *Ruleset) error {
	st, err := dumpTable(c)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	want := []string{mapToServer, mapFromServer}
	for _, s := range rs.Sets {
		want = append(want, s.Name)
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(st.sets))
	if !slices.Equal(got, want) {
		return fmt.Errorf("%w: table holds %d named sets, want %d", ErrDrift, len(got), len(want))
	}
	for _, s := range rs.Sets {
		el, err := dumpSetElems(netnsFD, s.Name)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrDrift, err)
		}
		if w := setKelems(s); !slices.Equal(el, w) {
			return fmt.Errorf("%w: set %s holds %d elements, want %d", ErrDrift, s.Name, len(el), len(w))
		}
	}
	return nil
}

func allChains(rs *Ruleset) []Chain {
	var out []Chain
	for _, g := range rs.Groups {
		out = append(append(out, g.In, g.Out), g.LogChains...)
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

// Counters implements Backend: one rule dump per chain, for the counter
// each rule names, then one request for the counters.
func (n *NFTables) Counters(ctx context.Context, chains ...string) (map[string]Counter, error) {
	byName := map[string]string{} // counter name -> tag
	var names []string
	for _, ch := range chains {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rules, err := dumpRules(n.opts.netnsFD, ch)
		if err != nil {
			return nil, fmt.Errorf("counters of chain %s: %w", ch, err)
		}
		for _, r := range rules {
			if r.counter != "" {
				if _, ok := byName[r.counter]; !ok {
					names = append(names, r.counter)
				}
				byName[r.counter] = r.tag
			}
		}
	}
	got, err := n.readCounters(ctx, names, false)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Counter, len(got))
	for name, c := range got {
		out[byName[name]] = c
	}
	return out, nil
}

// GroupCounters implements Backend.
func (n *NFTables) GroupCounters(ctx context.Context, groups ...GroupChains) (map[string]map[string]Counter, error) {
	return n.groupCounters(ctx, groups, false)
}

// ResetCounters implements Backend with NFT_MSG_GETOBJ_RESET, one per
// counter, all sent at once. Each counter is read and zeroed atomically: a
// packet counts either in what is returned or in the counter after.
func (n *NFTables) ResetCounters(ctx context.Context, groups ...GroupChains) (map[string]map[string]Counter, error) {
	return n.groupCounters(ctx, groups, true)
}

func (n *NFTables) groupCounters(ctx context.Context, groups []GroupChains, reset bool) (map[string]map[string]Counter, error) {
	type ref struct{ group, tag string }
	refs := map[string]ref{}
	var names []string
	for _, g := range groups {
		for _, o := range g.Objects {
			if o.Kind == ObjCounter {
				refs[o.Name] = ref{g.GroupID, o.Tag}
				names = append(names, o.Name)
			}
		}
	}
	got, err := n.readCounters(ctx, names, reset)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]Counter, len(groups))
	for _, g := range groups {
		out[g.GroupID] = map[string]Counter{}
	}
	for name, c := range got {
		r := refs[name]
		out[r.group][r.tag] = c
	}
	return out, nil
}

// readCounters reads (or resets) counters on the backend's read socket.
func (n *NFTables) readCounters(ctx context.Context, names []string, reset bool) (map[string]Counter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.rmu.Lock()
	defer n.rmu.Unlock()
	if n.rd == nil {
		c, err := dialNetfilter(n.opts.netnsFD)
		if err != nil {
			return nil, err
		}
		if err := bigBuffers(c); err != nil {
			c.Close()
			return nil, err
		}
		n.rd = c
	}
	got, err := readCounters(ctx, n.rd, names, reset)
	if err != nil {
		// Its state is unknown: the next read opens another.
		_ = n.rd.Close()
		n.rd = nil
		what := "read"
		if reset {
			what = "reset"
		}
		return nil, fmt.Errorf("%s counters: %w", what, err)
	}
	return got, nil
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
