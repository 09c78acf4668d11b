//go:build linux

package enforcer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/rampart-fw/rampart/store"
)

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
	// ip saddr @set: the address loaded whole, then looked up.
	lookup := func(name string, off uint32) error {
		set, ok := s[name]
		if !ok {
			return fmt.Errorf("unknown set %s", name)
		}
		n := uint32(4)
		if r.Family == FamilyIPv6 {
			n = 16
		}
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID})
		return nil
	}
	if r.SAddrSet != "" {
		off := uint32(12)
		if r.Family == FamilyIPv6 {
			off = 8
		}
		if err := lookup(r.SAddrSet, off); err != nil {
			return nil, err
		}
	}
	if r.DAddr.IsValid() {
		off := uint32(16)
		if r.Family == FamilyIPv6 {
			off = 24
		}
		e = append(e, prefixMatch(r.DAddr, off)...)
	}
	if r.DAddrSet != "" {
		off := uint32(16)
		if r.Family == FamilyIPv6 {
			off = 24
		}
		if err := lookup(r.DAddrSet, off); err != nil {
			return nil, err
		}
	}
	if r.L4 != L4Any {
		e = append(e, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, cmpEq([]byte{byte(r.L4)}))
	}
	dport := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	switch {
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
	if r.Counter != "" {
		e = append(e, &expr.Objref{Type: int(nftables.ObjTypeCounter), Name: r.Counter})
	}
	v := r.Verdict
	switch {
	case r.Log.Chain != "":
		v = Verdict{Kind: "goto", Chain: r.Log.Chain}
	case r.Log.Prefix != "":
		if r.Log.Limit != "" {
			e = append(e, &expr.Objref{Type: int(nftables.ObjTypeLimit), Name: r.Log.Limit})
		}
		e = append(e, &expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: r.Log.Group, Data: []byte(r.Log.Prefix)})
	}
	switch v.Kind {
	case "accept":
		e = append(e, &expr.Verdict{Kind: expr.VerdictAccept})
	case "drop":
		e = append(e, &expr.Verdict{Kind: expr.VerdictDrop})
	case "jump":
		e = append(e, &expr.Verdict{Kind: expr.VerdictJump, Chain: v.Chain})
	case "goto":
		e = append(e, &expr.Verdict{Kind: expr.VerdictGoto, Chain: v.Chain})
	case "":
	default:
		return nil, fmt.Errorf("unknown verdict %q", v.Kind)
	}
	return e, nil
}

func prefixMatch(p netip.Prefix, offset uint32) []expr.Any {
	addr := p.Addr().AsSlice()
	if p.Bits()%8 == 0 {
		// nft loads only the bytes of a byte-aligned prefix.
		n := uint32(p.Bits() / 8)
		load := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n}
		return []expr.Any{load, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr[:n]}}
	}
	n := uint32(len(addr))
	load := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n}
	mask := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{load,
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr},
	}
}

// encodedMsgs splits a batch buffer into its messages (type, flags, data).
func encodedMsgs(t *testing.T, buf []byte) []netlink.Message {
	t.Helper()
	var out []netlink.Message
	for len(buf) > 0 {
		n := int(binary.NativeEndian.Uint32(buf))
		if n < nlmsgHeaderLen || n > len(buf) {
			t.Fatalf("bad message length %d (%d left)", n, len(buf))
		}
		out = append(out, netlink.Message{
			Header: netlink.Header{
				Type:  netlink.HeaderType(binary.NativeEndian.Uint16(buf[4:])),
				Flags: netlink.HeaderFlags(binary.NativeEndian.Uint16(buf[6:])),
			},
			Data: buf[nlmsgHeaderLen:n],
		})
		buf = buf[(n+3)&^3:]
	}
	return out
}

// TestEncodeRuleMatchesLibrary checks that the batch's own encoding of
// rules and chains is byte for byte what github.com/google/nftables sends
// for ruleExprs, for every kind of rule the compiler makes: the benchmark's
// 10,000 rules, the fixed ones, the rich snapshot's logged rules and log
// chains, and the test cases' groups.
func TestEncodeRuleMatchesLibrary(t *testing.T) {
	rs := Compile(benchSnapshot(1))
	rich := richRuleset()
	var chains []Chain
	for _, g := range append(rs.Groups, rich.Groups...) {
		chains = append(append(chains, g.In, g.Out), g.LogChains...)
	}
	chains = append(chains, baseChains()...)
	chains = append(chains, rs.HostIn, rs.HostOut)
	// Hand-made rules covering what the snapshot does not: host chains
	// with jumps, /32 and /128, full-length ports, interface matches.
	extra := Chain{Name: "sg_extra_in", Rules: []Rule{
		{Tag: "a", IIFName: "vnet12345678901", Verdict: Verdict{Kind: "accept"}},
		{Tag: "b", OIFName: "lo", Counter: "sg_x_rb", Verdict: Verdict{Kind: "jump", Chain: "sg_x_in"}},
		{Tag: "c", Family: FamilyIPv4, SAddr: netip.MustParsePrefix("192.0.2.7/32"), DAddr: netip.MustParsePrefix("10.0.0.0/8"), L4: L4UDP, DPortFrom: 65535, Verdict: Verdict{Kind: "drop"}},
		{Tag: "d", Family: FamilyIPv6, SAddr: netip.MustParsePrefix("2001:db8::1/128"), DAddr: netip.MustParsePrefix("2001:db8:1::/33"), L4: L4ICMPv6, Counter: "sg_x_rd", Verdict: Verdict{Kind: "accept"}},
		{Tag: "", L4: L4TCP, DPortFrom: 1, DPortTo: 65535},
		{Tag: TagCompileError, Counter: "sg_x_compile_error", Verdict: Verdict{Kind: "drop"}},
		// A logged rule, and the two rules of its log chain.
		{Tag: "e", L4: L4UDP, Counter: "sg_x_re", Log: Log{Chain: "sg_x_log_re"}, Verdict: Verdict{Kind: "drop"}},
		{Tag: "e", Log: Log{Limit: "sg_x_log_50_100", Prefix: "rampart:x:in:e:drop", Group: 2910}, Verdict: Verdict{Kind: "drop"}},
		{Tag: TagLogLimited, Counter: "sg_x_log_limited", Verdict: Verdict{Kind: "drop"}},
		// A log without a limit, in group 0, and a prefix of odd length.
		{Tag: "f", Log: Log{Prefix: "rampart:x:out:f:accep", Group: 0}, Verdict: Verdict{Kind: "accept"}},
		{Tag: "g", Log: Log{Prefix: strings.Repeat("p", LogPrefixMax), Group: 65535}},
	}}
	chains = append(chains, extra)
	for _, rl := range []string{"0.0.0.0/1", "10.1.2.3/31", "fd00::/7", "::/1"} {
		for _, dir := range []store.Direction{store.Inbound, store.Outbound} {
			extra.Rules = append(extra.Rules, compileRule(rule("x", dir, store.TCP, store.Accept, rl, 22, 0)))
		}
	}
	chains = append(chains, extra)

	tb := table()
	// Both sides with set IDs assigned, as in a full batch.
	b, err := newBatch(tb)
	if err != nil {
		t.Fatal(err)
	}
	lib, rec := b.lib, b.rec
	for _, name := range []string{mapToServer, mapFromServer} {
		if err := lib.AddSet(b.sets[name], nil); err != nil {
			t.Fatal(err)
		}
	}
	// The rich ruleset's sets (IP sets and groups' members), one of
	// them not added in this batch: its rules look it up by name alone.
	b.register(rich.Sets)
	for _, set := range rich.Sets[1:] {
		if err := lib.AddSet(b.sets[set.Name], nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := lib.Flush(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ch := range chains {
		start := len(b.buf)
		nc := &nftables.Chain{Name: ch.Name, Table: tb}
		b.chainMsg(msgNewChain, netlink.Request|netlink.Create, ch.Name)
		b.chainMsg(msgDelRule, netlink.Request, ch.Name)
		b.chainMsg(msgDelChain, netlink.Request, ch.Name)
		rec.msgs = rec.msgs[:0]
		lib.AddChain(nc)
		lib.FlushChain(nc)
		lib.DelChain(nc)
		for _, r := range ch.Rules {
			if err := b.appendRule(ch.Name, r); err != nil {
				t.Fatal(err)
			}
			exprs, err := ruleExprs(r, b.sets)
			if err != nil {
				t.Fatal(err)
			}
			lib.AddRule(&nftables.Rule{Table: tb, Chain: nc, Exprs: exprs, UserData: userdata.AppendString(nil, userdata.TypeComment, r.Tag)})
		}
		if err := lib.Flush(); err != nil {
			t.Fatal(err)
		}
		got := encodedMsgs(t, b.buf[start:])
		want := rec.msgs[1 : len(rec.msgs)-1] // without the library's batch delimiters
		if len(got) != len(want) {
			t.Fatalf("chain %s: %d messages, want %d", ch.Name, len(got), len(want))
		}
		for i := range got {
			wf := want[i].Header.Flags &^ (netlink.Acknowledge | netlink.Echo)
			if got[i].Header.Type != want[i].Header.Type || got[i].Header.Flags != wf || !bytes.Equal(got[i].Data, want[i].Data) {
				what := "chain message"
				if i >= 3 {
					what = fmt.Sprintf("rule %q (%s)", ch.Rules[i-3].Tag, ch.Rules[i-3])
				}
				t.Fatalf("chain %s: %s differs from the library's:\n got %v %v % x\nwant %v %v % x", ch.Name, what,
					got[i].Header.Type, got[i].Header.Flags, got[i].Data, want[i].Header.Type, wf, want[i].Data)
			}
			n++
		}
	}
	t.Logf("%d messages identical", n)
}

// TestKernelBytecodeMatchesNFT proves that a netlink apply gives the kernel
// the very expressions that nft itself generates from the preview text of
// the same ruleset (`nft --debug=netlink list` shows them), not only rules
// that list the same.
func TestKernelBytecodeMatchesNFT(t *testing.T) {
	requireRoot(t)
	rs := richRuleset()
	nsNetlink, h := newNS(t, "bn")
	b, err := NewNFTables(WithNetNS(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(context.Background(), nil, rs); err != nil {
		t.Fatal(err)
	}
	nsText, _ := newNS(t, "bt")
	file := filepath.Join(t.TempDir(), "rampart.nft")
	if err := os.WriteFile(file, []byte(rs.Text()), 0o600); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "ip", "netns", "exec", nsText, "nft", "-f", file)
	bytecode := func(ns string) string {
		out := runCmd(t, "ip", "netns", "exec", ns, "nft", "--debug=netlink", "list", "table", "inet", TableName)
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "  [") || strings.HasPrefix(l, "inet "+TableName+" ") {
				// "inet rampart <chain> <handle> [<position>]": keep the chain.
				if f := strings.Fields(l); f[0] == "inet" {
					l = f[2]
				}
				lines = append(lines, bytecodeCounterRe.ReplaceAllString(l, "counter"))
			}
		}
		return strings.Join(lines, "\n")
	}
	got, want := bytecode(nsNetlink), bytecode(nsText)
	if got != want {
		t.Fatalf("netlink bytecode differs from nft's:\n--- netlink\n%s\n--- nft -f\n%s", got, want)
	}
	t.Logf("%d lines of bytecode identical", strings.Count(got, "\n"))
	if n := strings.Count(got, "\n"); n < 50 {
		t.Fatalf("only %d lines of bytecode compared:\n%s", n, got)
	}
}

var bytecodeCounterRe = regexp.MustCompile(`counter pkts \d+ bytes \d+`)

// TestKernelApplyKnowsWhatItSent checks that an apply leaves the backend
// knowing the kernel holds the new ruleset (the next Verify needs no dump),
// and that a change by someone else is still found.
func TestKernelApplyKnowsWhatItSent(t *testing.T) {
	requireRoot(t)
	ns, h := newNS(t, "kv")
	b, err := NewNFTables(WithNetNS(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	var c Compiler
	snap := richSnapshot()
	rs1 := c.Compile(snap)
	if err := b.Apply(ctx, nil, rs1); err != nil {
		t.Fatal(err)
	}
	if b.verifiedFor != rs1 {
		t.Fatal("after a full apply, the backend does not know the kernel holds it")
	}
	snap.Rules[gA] = append(slices.Clone(snap.Rules[gA]), rule("r-new", store.Inbound, store.TCP, store.Accept, "10.1.0.0/16", 9000, 0))
	rs2 := c.Compile(snap)
	if err := b.Apply(ctx, rs1, rs2); err != nil {
		t.Fatal(err)
	}
	if b.verifiedFor != rs2 {
		t.Fatal("after an incremental apply, the backend does not know the kernel holds it")
	}
	if err := b.Verify(ctx, rs2); err != nil {
		t.Fatal(err)
	}
	in, _ := ChainNames(gA)
	runCmd(t, "ip", "netns", "exec", ns, "nft", "add", "rule", "inet", TableName, in, "accept")
	if err := b.Verify(ctx, rs2); !errors.Is(err, ErrDrift) {
		t.Fatalf("Verify after a foreign rule = %v, want ErrDrift", err)
	}
	// An incremental apply over a drifted kernel is not taken as verified.
	snap.Rules[gA] = snap.Rules[gA][:len(snap.Rules[gA])-1]
	rs3 := c.Compile(snap)
	if err := b.Apply(ctx, rs2, rs3); err != nil {
		t.Fatal(err)
	}
	if b.verifiedFor == rs3 {
		t.Fatal("an apply over an unverified kernel counted as verified")
	}
}

// TestEncodeObjectsMatchLibrary checks that the batch's own encoding of
// NEWOBJ (counters and limits) and DELOBJ is byte for byte what the
// library's AddObj and DeleteObject send.
func TestEncodeObjectsMatchLibrary(t *testing.T) {
	tb := table()
	b, err := newBatch(tb)
	if err != nil {
		t.Fatal(err)
	}
	lib, rec := b.lib, b.rec
	objects := []Object{
		{Kind: ObjCounter, Name: counterName(gA, TagDefaultIn), Tag: TagDefaultIn},
		{Kind: ObjCounter, Name: counterName(gA, strings.Repeat("z", 100)), Tag: "z"},
		{Kind: ObjCounter, Name: "c"},
		{Kind: ObjLimit, Name: limitName(gA, LogLimit{Rate: 50, Burst: 100}), Rate: 50, Burst: 100},
		{Kind: ObjLimit, Name: "l", Rate: 1 << 40, Burst: 1<<32 - 1},
	}
	for _, o := range objects {
		start := len(b.buf)
		if err := b.addObject(o); err != nil {
			t.Fatal(err)
		}
		if err := b.delObject(o); err != nil {
			t.Fatal(err)
		}
		named := &nftables.NamedObj{Table: tb, Name: o.Name, Type: nftables.ObjTypeCounter, Obj: &expr.Counter{}}
		if o.Kind == ObjLimit {
			named = &nftables.NamedObj{Table: tb, Name: o.Name, Type: nftables.ObjTypeLimit,
				Obj: &expr.Limit{Type: expr.LimitTypePkts, Rate: o.Rate, Unit: expr.LimitTimeSecond, Burst: o.Burst}}
		}
		rec.msgs = rec.msgs[:0]
		lib.AddObj(named)
		lib.DeleteObject(named)
		if err := lib.Flush(); err != nil {
			t.Fatal(err)
		}
		got := encodedMsgs(t, b.buf[start:])
		want := rec.msgs[1 : len(rec.msgs)-1]
		if len(got) != len(want) {
			t.Fatalf("object %s: %d messages, want %d", o.Name, len(got), len(want))
		}
		for i := range got {
			wf := want[i].Header.Flags &^ (netlink.Acknowledge | netlink.Echo)
			if got[i].Header.Type != want[i].Header.Type || got[i].Header.Flags != wf || !bytes.Equal(got[i].Data, want[i].Data) {
				t.Errorf("object %s message %d differs from the library's:\n got %v %v % x\nwant %v %v % x", o.Name, i,
					got[i].Header.Type, got[i].Header.Flags, got[i].Data, want[i].Header.Type, wf, want[i].Data)
			}
		}
	}
}

// TestEncodeSetElemsMatchLibrary checks that the batch's own encoding of
// set elements (NEWSETELEM and DELSETELEM, interval ends included) is byte
// for byte what the library's SetAddElements and SetDeleteElements send
// for the same chunk, and that chunks keep every message's element list
// under the 16-bit attribute length that the library lets wrap: 100,000
// elements of each kind, IPv4 and IPv6, hash and interval.
func TestEncodeSetElemsMatchLibrary(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  Set
	}{
		{"v4 addresses", Set{Name: "ips_x_4a", Family: FamilyIPv4, Elems: manyPrefixes(100_000, false, 32)}},
		{"v4 networks", Set{Name: "ips_x_4n", Family: FamilyIPv4, Interval: true, Elems: append(manyPrefixes(100_000, false, 30), netip.MustParsePrefix("128.0.0.0/1"))}},
		{"v6 addresses", Set{Name: "ips_x_6a", Family: FamilyIPv6, Elems: manyPrefixes(100_000, true, 128)}},
		{"v6 networks", Set{Name: "ips_x_6n", Family: FamilyIPv6, Interval: true, Elems: manyPrefixes(100_000, true, 64)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := newBatch(table())
			if err != nil {
				t.Fatal(err)
			}
			b.register([]Set{tc.set})
			ls := b.sets[tc.set.Name]
			ls.ID = 77 // as if added in this batch
			elems := setKelems(tc.set)
			for _, typ := range []uint16{msgNewSetElem, msgDelSetElem} {
				start := len(b.buf)
				if err := b.setElems(typ, ls, elems); err != nil {
					t.Fatal(err)
				}
				got := encodedMsgs(t, b.buf[start:])
				seen := 0
				for i, m := range got {
					// Each message's element list, one attribute, must fit
					// its 16-bit length.
					ad, err := netlink.NewAttributeDecoder(m.Data[4:])
					if err != nil {
						t.Fatal(err)
					}
					var n int
					for ad.Next() {
						if ad.Type() == unix.NFTA_SET_ELEM_LIST_ELEMENTS {
							n = len(ad.Bytes())
						}
					}
					if n == 0 || n > 0xffff-4 {
						t.Fatalf("message %d: element list of %d bytes", i, n)
					}
					// The same chunk through the library.
					k := countElems(t, m)
					chunk := make([]nftables.SetElement, 0, k)
					for _, e := range elems[seen : seen+k] {
						chunk = append(chunk, nftables.SetElement{Key: slices.Clone(e.key[:e.n]), IntervalEnd: e.end})
					}
					seen += len(chunk)
					b.rec.msgs = b.rec.msgs[:0]
					if typ == msgNewSetElem {
						err = b.lib.SetAddElements(ls, chunk)
					} else {
						err = b.lib.SetDeleteElements(ls, chunk)
					}
					if err != nil {
						t.Fatal(err)
					}
					if err := b.lib.Flush(); err != nil {
						t.Fatal(err)
					}
					want := b.rec.msgs[1]
					wf := want.Header.Flags &^ (netlink.Acknowledge | netlink.Echo)
					if uint16(m.Header.Type) != typ || m.Header.Type != want.Header.Type || m.Header.Flags != wf || !bytes.Equal(m.Data, want.Data) {
						t.Fatalf("message %d differs from the library's (%d elements)", i, len(chunk))
					}
				}
				if seen != len(elems) {
					t.Fatalf("%d elements sent, want %d", seen, len(elems))
				}
				t.Logf("%d elements in %d messages", len(elems), len(got))
			}
		})
	}
}

// countElems counts the elements of a set element message.
func countElems(t *testing.T, m netlink.Message) int {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ad.Next() {
		if ad.Type() == unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			ad.Nested(func(l *netlink.AttributeDecoder) error {
				for l.Next() {
					n++
				}
				return nil
			})
		}
	}
	return n
}
