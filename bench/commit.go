package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// CommitResults are the figures of a one-rule change from the call to the
// store until the kernel holds it, on each engine, beside `nft -f` of the
// same group's two chains, measured in turns.
type CommitResults struct {
	Scale       Scale
	KernelRules int // rules of the table
	GroupRules  int // kernel rules of the changed group's two chains, the new rule included
	ScriptBytes int // size of the nft script
	Engines     []EngineCommit
	// NFT is `nft -f` of a script that flushes the group's two chains and
	// fills them again with the rule added, in one transaction: what the
	// reconciler's netlink batch does.
	NFT Sample
}

// EngineCommit are the figures of one engine.
type EngineCommit struct {
	Engine string
	// Commit is store.CreateRule alone: the transaction and its commit,
	// whose wait for the disk is the engine's (SQLite's synchronous(FULL)
	// fsync, PostgreSQL's WAL flush).
	Commit Sample
	// ToKernel is from the call to CreateRule until the reconciler reports
	// the group's generation applied (its netlink batch acknowledged).
	ToKernel Sample
	// Pass is the reconciler's pass that applied it: the incremental read
	// of the store, the compile and the netlink apply.
	Pass Sample
	// Snapshot is a whole store.Snapshot, for comparison with the
	// incremental read.
	Snapshot Sample
}

// commitEngine is one engine's store and reconciler.
type commitEngine struct {
	e    *EngineCommit
	ds   *Dataset
	ns   *NS
	be   *enforcer.NFTables
	rec  *enforcer.Reconciler
	stop func() // stops rec
}

// MeasureCommit fills a SQLite store at sc and copies it to each other
// engine of engines; runs a reconciler with the nftables backend in a
// namespace of its own on each store; loads the same table in one more
// namespace for nft. Then, n times, in alternating order: a rule created
// on each engine, timed until its reconciler reports the group applied,
// then read from the kernel (untimed) and deleted again; and `nft -f` of
// the group's chains with one rule more, read back from the kernel
// (untimed) and restored.
func MeasureCommit(ctx context.Context, sc Scale, engines []Engine, n int, dir string) (CommitResults, error) {
	res := CommitResults{Scale: sc}
	if sc.Groups == 0 {
		return res, fmt.Errorf("commit benchmark: no group")
	}
	if len(engines) == 0 || engines[0].Name != "SQLite" {
		return res, fmt.Errorf("commit benchmark: the first engine must be SQLite, which the data is made on")
	}
	ds, err := Populate(ctx, filepath.Join(dir, "rampart.db"), sc)
	if err != nil {
		return res, err
	}
	res.Engines = make([]EngineCommit, len(engines))
	ces := make([]*commitEngine, len(engines))
	defer func() {
		for _, c := range ces {
			if c != nil {
				c.close()
			}
		}
	}()
	for i, e := range engines {
		res.Engines[i].Engine = e.Name
		c := &commitEngine{e: &res.Engines[i], ds: ds}
		if i > 0 {
			if c.ds, _, err = ds.CopyTo(ctx, e); err != nil {
				return res, err
			}
		}
		ces[i] = c
		if err := c.start(ctx); err != nil {
			return res, fmt.Errorf("%s: %w", e.Name, err)
		}
	}

	// The nft side: the same table, loaded once over netlink.
	snap, err := ds.DB.Snapshot(ctx)
	if err != nil {
		return res, err
	}
	rs := enforcer.Compile(snap)
	for _, c := range allChains(rs) {
		res.KernelRules += len(c.Rules)
	}
	nftNS, err := NewNS("nft")
	if err != nil {
		return res, err
	}
	defer nftNS.Close()
	nftBE, err := enforcer.NewNFTables(enforcer.WithNetNS(nftNS.FD()))
	if err != nil {
		return res, err
	}
	defer nftBE.Close()
	if err := nftBE.Apply(ctx, nil, rs); err != nil {
		return res, fmt.Errorf("load the table for nft: %w", err)
	}
	g := ds.Groups[17%len(ds.Groups)]
	in, out := enforcer.ChainNames(g.ID)
	script := func(extra *store.Rule) (string, error) {
		s := snap
		s.Rules = map[string][]store.Rule{}
		for id, rules := range snap.Rules {
			s.Rules[id] = rules
		}
		if extra != nil {
			s.Rules[g.ID] = append(append([]store.Rule(nil), snap.Rules[g.ID]...), *extra)
		}
		grs := enforcer.Compile(s)
		text := grs.GroupText(g.ID)
		if text == "" {
			return "", fmt.Errorf("group %s compiles to nothing", g.ID)
		}
		gc, _ := grs.Group(g.ID)
		if extra != nil {
			res.GroupRules = len(gc.In.Rules) + len(gc.Out.Rules)
		}
		// The rules name the group's counter objects: the new rule's must
		// be declared with it (declaring those that exist keeps them, and
		// their counts), as the enforcer's batch adds it.
		var objects strings.Builder
		for _, o := range gc.Objects {
			switch o.Kind {
			case enforcer.ObjCounter:
				fmt.Fprintf(&objects, "\tcounter %s {\n\t}\n", o.Name)
			case enforcer.ObjLimit:
				fmt.Fprintf(&objects, "\tlimit %s {\n\t\trate %d/second burst %d packets\n\t}\n", o.Name, o.Rate, o.Burst)
			}
		}
		// Its log chains (of its default drops) are refilled too.
		var flush strings.Builder
		for _, c := range append([]enforcer.Chain{{Name: in}, {Name: out}}, gc.LogChains...) {
			fmt.Fprintf(&flush, "flush chain inet %s %s\n", enforcer.TableName, c.Name)
		}
		return fmt.Sprintf("%[1]stable inet %[2]s {\n%[3]s%[4]s}\n", flush.String(), enforcer.TableName, objects.String(), text), nil
	}
	restore, err := script(nil)
	if err != nil {
		return res, err
	}
	restoreFile := filepath.Join(dir, "restore.nft")
	if err := os.WriteFile(restoreFile, []byte(restore), 0o600); err != nil {
		return res, err
	}

	// An isolated change: the reconcilers pace their reads of the store
	// under a stream of changes (at most a third of the store's time), so
	// rounds are spaced by more than that.
	var pause time.Duration
	for _, c := range ces {
		for range max(5, n/3) {
			t0 := time.Now()
			if _, err := c.ds.DB.Snapshot(ctx); err != nil {
				return res, err
			}
			c.e.Snapshot = append(c.e.Snapshot, time.Since(t0))
		}
		pause = max(pause, 4*c.e.Snapshot.Median()+5*time.Millisecond)
	}
	for i := -1; i < n; i++ {
		port := 5000 + i + 1
		for _, k := range Order(i+1, len(ces)+1) {
			time.Sleep(pause)
			if k < len(ces) {
				if err := ces[k].change(ctx, g, port, i >= 0); err != nil {
					return res, fmt.Errorf("%s: %w", ces[k].e.Engine, err)
				}
				continue
			}
			id := fmt.Sprintf("nft-bench-%d", port)
			text, err := script(&store.Rule{ID: id, GroupID: g.ID, Direction: store.Inbound, Protocol: store.TCP,
				Action: store.Accept, IPRange: netip.MustParsePrefix("192.0.2.0/24"), DestPortFrom: uint16(port),
				Position: len(snap.Rules[g.ID]) + 1, Editable: true})
			if err != nil {
				return res, err
			}
			file := filepath.Join(dir, "change.nft")
			if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
				return res, err
			}
			res.ScriptBytes = len(text)
			t0 := time.Now()
			if err := nftNS.Exec(nil, "nft", "-f", file); err != nil {
				return res, err
			}
			d := time.Since(t0)
			got, err := nftBE.Counters(ctx, in)
			if err != nil {
				return res, err
			}
			if _, ok := got[id]; !ok {
				return res, fmt.Errorf("after nft -f: chain %s lacks rule %s", in, id)
			}
			if err := nftNS.Exec(nil, "nft", "-f", restoreFile); err != nil {
				return res, fmt.Errorf("restore the group's chains: %w", err)
			}
			if i >= 0 {
				res.NFT = append(res.NFT, d)
			}
		}
	}
	// The restored table must be the one loaded: nothing else moved.
	chk, err := enforcer.NewNFTables(enforcer.WithNetNS(nftNS.FD()))
	if err != nil {
		return res, err
	}
	defer chk.Close()
	if err := chk.Verify(ctx, rs); err != nil {
		return res, fmt.Errorf("the nft namespace after the runs: %w", err)
	}
	return res, nil
}

// start runs the engine's reconciler with the nftables backend in a new
// namespace, and waits for its first apply.
func (c *commitEngine) start(ctx context.Context) error {
	var err error
	if c.ns, err = NewNS("cm"); err != nil {
		return err
	}
	if c.be, err = enforcer.NewNFTables(enforcer.WithNetNS(c.ns.FD())); err != nil {
		return err
	}
	c.rec = enforcer.NewReconciler(c.ds.DB, c.be, nil)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.rec.Run(rctx); close(done) }()
	c.stop = func() { cancel(); <-done }
	gen, err := c.ds.DB.Generation(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	for c.rec.Stats().AppliedGeneration < gen {
		if time.Since(t0) > 30*time.Second {
			return fmt.Errorf("first apply not done after 30 s (stats %+v)", c.rec.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func (c *commitEngine) close() {
	if c.stop != nil {
		c.stop()
	}
	if c.be != nil {
		c.be.Close()
	}
	if c.ns != nil {
		c.ns.Close()
	}
	c.ds.DB.Close()
}

// change creates a rule for TCP port in group g, timed until the
// reconciler reports the group applied, checks the kernel and deletes the
// rule again (untimed). It records the figures when record is set.
func (c *commitEngine) change(ctx context.Context, g store.Group, port int, record bool) error {
	ds := c.ds
	in, _ := enforcer.ChainNames(g.ID)
	t0 := time.Now()
	r, err := ds.DB.CreateRule(ctx, ds.Org.ID, ds.Zone, g.ID, store.RuleInput{
		Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept,
		IPRange: "192.0.2.0/24", DestPortFrom: &port,
	})
	commit := time.Since(t0)
	if err != nil {
		return err
	}
	gen, err := ds.DB.Generation(ctx)
	if err != nil {
		return err
	}
	if err := c.waitGen(g.ID, gen); err != nil {
		return err
	}
	toKernel := time.Since(t0)
	pass := c.rec.Stats().LastApplyDuration
	// Untimed: the reconciler's word checked against the kernel.
	got, err := c.be.Counters(ctx, in)
	if err != nil {
		return fmt.Errorf("read group %s from the kernel: %w", g.ID, err)
	}
	if _, ok := got[r.ID]; !ok {
		return fmt.Errorf("group %s reported applied, but the kernel's chain %s lacks rule %s", g.ID, in, r.ID)
	}
	if record {
		c.e.Commit = append(c.e.Commit, commit)
		c.e.ToKernel = append(c.e.ToKernel, toKernel)
		c.e.Pass = append(c.e.Pass, pass)
	}
	if err := ds.DB.DeleteRule(ctx, ds.Org.ID, ds.Zone, g.ID, r.ID); err != nil {
		return err
	}
	if gen, err = ds.DB.Generation(ctx); err != nil {
		return err
	}
	return c.waitGen(g.ID, gen)
}

func (c *commitEngine) waitGen(groupID string, gen int64) error {
	deadline := time.Now().Add(10 * time.Second)
	for c.rec.GroupGeneration(groupID) < gen {
		if time.Now().After(deadline) {
			return fmt.Errorf("group %s not applied at generation %d after 10 s (stats %+v)", groupID, gen, c.rec.Stats())
		}
		time.Sleep(20 * time.Microsecond)
	}
	return nil
}
