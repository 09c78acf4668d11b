package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// ApplyResult holds the enforcer figures of one scale point.
type ApplyResult struct {
	Scale       Scale
	KernelRules int    // rules of the inet rampart table
	IPTRules    int    // rules of the iptables + ip6tables files
	TextBytes   int    // size of the nft script
	Incremental Sample // compile + incremental apply of one changed rule, each read back before the next
	Burst       Sample // the same, back to back
	Full        Sample // compile + full resync over netlink
	NFT         Sample // nft -f of Ruleset.Text()
	IPT         Sample // iptables-restore + ip6tables-restore of the linear equivalent
}

// MeasureApply measures, in a namespace of its own, a full resync over
// netlink, `nft -f` of the same ruleset's text and iptables-restore of its
// linear equivalent, taking turns in alternating order, runs times each
// after one warm-up round; then incr incremental applies of a one-rule
// change isolated, and as many back to back. After every timed load the
// kernel is read back, and a mismatch is an error.
func MeasureApply(ctx context.Context, sc Scale, runs, incr int, tmp string) (ApplyResult, error) {
	res := ApplyResult{Scale: sc}
	ns, err := NewNS("ap")
	if err != nil {
		return res, err
	}
	defer ns.Close()
	be, err := enforcer.NewNFTables(enforcer.WithNetNS(ns.FD()))
	if err != nil {
		return res, err
	}
	defer be.Close()
	snap := Snapshot(sc)
	rs := enforcer.Compile(snap)
	for _, c := range allChains(rs) {
		res.KernelRules += len(c.Rules)
	}
	text := rs.Text()
	res.TextBytes = len(text)
	nftFile := filepath.Join(tmp, "ruleset.nft")
	v4File, v6File := filepath.Join(tmp, "rules.v4"), filepath.Join(tmp, "rules.v6")
	v4, v6 := IPTablesRestore(rs, false), IPTablesRestore(rs, true)
	res.IPTRules = strings.Count(v4, "\n-A ") + strings.Count(v6, "\n-A ")
	for name, body := range map[string]string{nftFile: text, v4File: v4, v6File: v6} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			return res, err
		}
	}

	// A second backend only reads: it has never applied anything, so its
	// Verify always dumps the kernel's table instead of trusting the
	// generation an apply left behind.
	chk, err := enforcer.NewNFTables(enforcer.WithNetNS(ns.FD()))
	if err != nil {
		return res, err
	}
	defer chk.Close()
	if len(rs.Errors) > 0 {
		return res, fmt.Errorf("compile: %v", rs.Errors)
	}
	// The three ways of loading the ruleset, each checked after its timed
	// part: the kernel must hold what was loaded.
	loads := []func() (time.Duration, error){
		func() (time.Duration, error) {
			t0 := time.Now()
			next := enforcer.Compile(snap)
			if err := be.Apply(ctx, nil, next); err != nil {
				return 0, fmt.Errorf("full resync: %w", err)
			}
			d := time.Since(t0)
			if err := chk.Verify(ctx, next); err != nil {
				return 0, fmt.Errorf("after a full resync: %w", err)
			}
			return d, nil
		},
		func() (time.Duration, error) {
			t0 := time.Now()
			if err := ns.Exec(nil, "nft", "-f", nftFile); err != nil {
				return 0, err
			}
			d := time.Since(t0)
			if err := chk.Verify(ctx, rs); err != nil {
				return 0, fmt.Errorf("after nft -f: %w", err)
			}
			return d, nil
		},
		func() (time.Duration, error) {
			t0 := time.Now()
			if err := ns.Exec(nil, "iptables-restore", v4File); err != nil {
				return 0, err
			}
			if err := ns.Exec(nil, "ip6tables-restore", v6File); err != nil {
				return 0, err
			}
			d := time.Since(t0)
			n := 0
			for _, save := range []string{"iptables-save", "ip6tables-save"} {
				out, err := ns.Output(save, "-t", "filter")
				if err != nil {
					return 0, err
				}
				n += strings.Count(string(out), "\n-A ")
			}
			if n != res.IPTRules {
				return 0, fmt.Errorf("after iptables-restore: the kernel holds %d iptables rules, want %d", n, res.IPTRules)
			}
			return d, nil
		},
	}
	samples := []*Sample{&res.Full, &res.NFT, &res.IPT}
	for i := -1; i < runs; i++ {
		for _, k := range Order(i+1, len(loads)) {
			d, err := loads[k]()
			if err != nil {
				return res, err
			}
			if i >= 0 { // the first round warms caches and creates the tables
				*samples[k] = append(*samples[k], d)
			}
		}
	}

	// Incremental: one rule of one group changes, compiled as the
	// reconciler compiles (a Compiler that reuses unchanged groups), in
	// two ways that take turns in rounds: isolated, each change read back
	// from the kernel (untimed) before the next, which leaves the kernel
	// a moment between applies as between changes made one at a time;
	// and back to back, as under a stream of changes, where each apply's
	// answer is the kernel's acknowledgement of its batch and the last
	// change of the burst is read back after it.
	var c enforcer.Compiler
	prev := c.Compile(snap)
	if err := be.Apply(ctx, nil, prev); err != nil {
		return res, err
	}
	if sc.Rules == 0 || sc.Groups == 0 {
		return res, nil
	}
	g := snap.Groups[17%len(snap.Groups)].ID
	chain, _ := enforcer.ChainNames(g) // rule 0 is inbound
	port := 3000
	change := func() (time.Duration, error) {
		port++
		rules := append([]store.Rule(nil), snap.Rules[g]...)
		rules[0].DestPortFrom = uint16(port) // rule 0 is TCP: ports apply
		snap.Rules[g] = rules
		t0 := time.Now()
		next := c.Compile(snap)
		if err := be.Apply(ctx, prev, next); err != nil {
			return 0, fmt.Errorf("incremental apply: %w", err)
		}
		d := time.Since(t0)
		if len(next.Errors) > 0 {
			return 0, fmt.Errorf("incremental compile: %v", next.Errors)
		}
		prev = next
		return d, nil
	}
	const rounds = 3
	per := max(1, incr/rounds)
	for round := 0; round < rounds; round++ {
		for _, k := range Order(round, 2) {
			for range per {
				d, err := change()
				if err != nil {
					return res, err
				}
				if k == 0 {
					if err := checkPort(ns, chain, port); err != nil {
						return res, fmt.Errorf("after an incremental apply: %w", err)
					}
					res.Incremental = append(res.Incremental, d)
				} else {
					res.Burst = append(res.Burst, d)
				}
			}
			if k == 1 {
				if err := checkPort(ns, chain, port); err != nil {
					return res, fmt.Errorf("after a burst of incremental applies: %w", err)
				}
			}
		}
	}
	if err := chk.Verify(ctx, prev); err != nil {
		return res, fmt.Errorf("after the incremental applies: %w", err)
	}
	return res, nil
}

// checkPort reads chain from the kernel of ns (with nft) and checks that a
// rule matches TCP port port: the incremental change reached the kernel.
func checkPort(ns *NS, chain string, port int) error {
	out, err := ns.Output("nft", "list", "chain", "inet", enforcer.TableName, chain)
	if err != nil {
		return err
	}
	if !strings.Contains(string(out), fmt.Sprintf("tcp dport %d ", port)) {
		return fmt.Errorf("chain %s in the kernel has no rule for TCP port %d: %s", chain, port, firstLines(string(out), 8))
	}
	return nil
}

func allChains(rs *enforcer.Ruleset) []enforcer.Chain {
	var out []enforcer.Chain
	for _, g := range rs.Groups {
		out = append(out, g.In, g.Out)
	}
	// The two dispatch rules of the hooked chains.
	out = append(out, enforcer.Chain{Rules: make([]enforcer.Rule, 2)})
	return append(out, rs.HostIn, rs.HostOut)
}

// StoreApplyResult holds the figures of the whole path: a rule committed
// to the store until the reconciler reports its group applied.
type StoreApplyResult struct {
	Scale     Scale
	Commit    Sample // store.CreateRule alone
	ToKernel  Sample // CreateRule until GroupGeneration reaches its generation
	Snapshot  Sample // store.Snapshot, which every reconciler pass reads
	LastApply Sample // the reconciler's own LastApplyDuration (snapshot + compile + apply)
}

// MeasureStoreApply fills a store at sc, runs a reconciler with the nftables
// backend in a namespace, and times n rule creations from the call to
// store.CreateRule until the reconciler reports the group applied; then,
// untimed, the group's chain is read from the kernel and must hold the
// rule.
func MeasureStoreApply(ctx context.Context, sc Scale, n int, tmp string) (StoreApplyResult, error) {
	res := StoreApplyResult{Scale: sc}
	ds, err := Populate(ctx, filepath.Join(tmp, "rampart.db"), sc)
	if err != nil {
		return res, err
	}
	defer ds.DB.Close()
	ns, err := NewNS("st")
	if err != nil {
		return res, err
	}
	defer ns.Close()
	be, err := enforcer.NewNFTables(enforcer.WithNetNS(ns.FD()))
	if err != nil {
		return res, err
	}
	defer be.Close()
	rec := enforcer.NewReconciler(ds.DB, be, nil)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rec.Run(rctx) }()
	defer func() { cancel(); <-done }()
	<-rec.Ready()
	waitGen := func(groupID string, gen int64) error {
		deadline := time.Now().Add(10 * time.Second)
		for rec.GroupGeneration(groupID) < gen {
			if time.Now().After(deadline) {
				return fmt.Errorf("group %s not applied at generation %d after 10 s (stats %+v)", groupID, gen, rec.Stats())
			}
			time.Sleep(20 * time.Microsecond)
		}
		return nil
	}
	g := ds.Groups[17%len(ds.Groups)]
	in, _ := enforcer.ChainNames(g.ID) // the rules created are inbound
	t0 := time.Now()
	gen, err := ds.DB.Generation(ctx)
	if err != nil {
		return res, err
	}
	for rec.Stats().AppliedGeneration < gen {
		if time.Since(t0) > 30*time.Second {
			return res, fmt.Errorf("first apply not done after 30 s (stats %+v)", rec.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < max(5, n/3); i++ {
		t0 := time.Now()
		if _, err := ds.DB.Snapshot(ctx); err != nil {
			return res, err
		}
		res.Snapshot = append(res.Snapshot, time.Since(t0))
	}
	// An isolated change: the reconciler paces its reads of the store
	// under a stream of changes (at most a third of the store's time), so
	// rounds are spaced by more than that.
	pause := 4*res.Snapshot.Median() + 5*time.Millisecond
	for i := 0; i < n; i++ {
		time.Sleep(pause)
		port := 5000 + i
		t0 := time.Now()
		r, err := ds.DB.CreateRule(ctx, ds.Org.ID, ds.Zone, g.ID, store.RuleInput{
			Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept,
			IPRange: "192.0.2.0/24", DestPortFrom: &port,
		})
		commit := time.Since(t0)
		if err != nil {
			return res, err
		}
		gen, err := ds.DB.Generation(ctx)
		if err != nil {
			return res, err
		}
		if err := waitGen(g.ID, gen); err != nil {
			return res, err
		}
		toKernel := time.Since(t0)
		lastApply := rec.Stats().LastApplyDuration
		// Untimed: the reconciler's word checked against the kernel.
		got, err := be.Counters(ctx, in)
		if err != nil {
			return res, fmt.Errorf("read group %s from the kernel: %w", g.ID, err)
		}
		if _, ok := got[r.ID]; !ok {
			return res, fmt.Errorf("group %s reported applied, but the kernel's chain %s lacks rule %s", g.ID, in, r.ID)
		}
		res.ToKernel = append(res.ToKernel, toKernel)
		res.Commit = append(res.Commit, commit)
		res.LastApply = append(res.LastApply, lastApply)
		// Back to the same size for the next round; not measured.
		if err := ds.DB.DeleteRule(ctx, ds.Org.ID, ds.Zone, g.ID, r.ID); err != nil {
			return res, err
		}
		if gen, err = ds.DB.Generation(ctx); err != nil {
			return res, err
		}
		if err := waitGen(g.ID, gen); err != nil {
			return res, err
		}
	}
	return res, nil
}
