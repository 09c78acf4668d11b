package enforcer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// defaultCheckInterval is how often the reconciler compares the kernel with
// what it applied, and retries a failed apply.
const defaultCheckInterval = time.Second

// Pacing of snapshots (see sync): a snapshot starts no sooner than
// readPace times the previous one's duration after that one started, and
// never waits more than maxReadWait.
const (
	readPace    = 3
	maxReadWait = 500 * time.Millisecond
)

// Reconciler keeps a Backend holding the Source's desired state: it applies
// at start, on every change notification, and checks the backend every
// second, restoring the ruleset when someone else changed it (drift).
// Its methods are safe for concurrent use.
type Reconciler struct {
	src      Source
	backend  Backend
	log      *slog.Logger
	interval time.Duration

	ready     chan struct{}
	readyOnce sync.Once

	// syncMu serialises applies and guards compiler; mu guards the fields
	// below and is never held across a backend call, so readers are not
	// blocked by an apply.
	syncMu    sync.Mutex
	compiler  Compiler        // recompiles only the groups that changed
	lastSnap  *store.Snapshot // the last snapshot read, for incremental reads
	nextRead  time.Time       // no snapshot before: see sync
	mu        sync.Mutex
	applied   *Ruleset // what the backend holds; nil: unknown, next apply is full
	desired   *Ruleset // last compiled, applied or not
	needFull  bool     // the backend was found to differ from applied
	snapGen   int64    // store generation of the last snapshot taken
	recompile bool     // the log settings changed: apply even if the store did not
	groups    map[string]*groupStatus
	stats     Stats
	watchers  map[chan struct{}]struct{} // woken after every apply: see Watch
}

type groupStatus struct {
	applied int64  // group generation the backend holds
	errGen  int64  // group generation whose apply failed
	errText string // why
}

// NewReconciler returns a Reconciler that applies src's state through b.
// Nothing happens until Run.
func NewReconciler(src Source, b Backend, log *slog.Logger) *Reconciler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{
		src: src, backend: b, log: log, interval: defaultCheckInterval,
		ready:    make(chan struct{}),
		groups:   map[string]*groupStatus{},
		watchers: map[chan struct{}]struct{}{},
	}
}

// Run applies the desired state, then follows the Source until ctx is done.
// It returns nil when ctx is cancelled. The ruleset stays in the kernel
// after Run returns: an enforcer that stops must not open the firewall.
func (r *Reconciler) Run(ctx context.Context) error {
	wake, cancel := r.src.Watch()
	defer cancel()
	r.sync(ctx)
	r.readyOnce.Do(func() { close(r.ready) })
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
			r.sync(ctx)
		case <-tick.C:
			r.check(ctx)
		}
	}
}

// Ready is closed once the first apply has been attempted, successful or not.
func (r *Reconciler) Ready() <-chan struct{} { return r.ready }

// check runs every interval: it catches up with a missed change, retries a
// failed apply, and otherwise asks the backend whether it still holds what
// was applied, repairing drift with a full resync.
func (r *Reconciler) check(ctx context.Context) {
	gen, genErr := r.src.Generation(ctx)
	r.mu.Lock()
	applied, failing, seen, recompile := r.applied, r.stats.LastError != "", r.snapGen, r.recompile
	r.mu.Unlock()
	if applied == nil || failing || recompile || (genErr == nil && gen != seen) {
		r.sync(ctx)
		return
	}
	err := r.backend.Verify(ctx, applied)
	switch {
	case err == nil:
	case errors.Is(err, ErrDrift):
		r.log.Warn("enforcer drift: restoring ruleset", "err", err)
		r.mu.Lock()
		r.needFull = true
		r.mu.Unlock()
		if r.sync(ctx) {
			r.mu.Lock()
			r.stats.DriftRepairs++
			r.notify()
			r.mu.Unlock()
		}
	case ctx.Err() == nil:
		r.log.Error("enforcer verify", "err", err)
	}
}

// read returns the desired state, reading only what changed since the last
// read when the source can.
func (r *Reconciler) read(ctx context.Context) (store.Snapshot, error) {
	var snap store.Snapshot
	var err error
	if inc, ok := r.src.(incrementalSource); ok && r.lastSnap != nil {
		snap, err = inc.SnapshotSince(ctx, *r.lastSnap)
	} else {
		snap, err = r.src.Snapshot(ctx)
	}
	if err == nil {
		r.lastSnap = &snap
	}
	return snap, err
}

// sync compiles the current snapshot and applies it; it reports success.
func (r *Reconciler) sync(ctx context.Context) bool {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	if !r.pace(ctx) {
		return false
	}
	start := time.Now()
	snap, err := r.read(ctx)
	r.nextRead = start.Add(readPace * time.Since(start))
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("enforcer snapshot", "err", err)
			r.mu.Lock()
			r.stats.ApplyErrors++
			r.stats.LastError = "read desired state: " + err.Error()
			r.notify()
			r.mu.Unlock()
		}
		return false
	}
	rs := r.compiler.Compile(snap)

	r.mu.Lock()
	prev, full := r.applied, r.applied == nil || r.needFull
	r.snapGen, r.recompile = snap.Generation, false
	r.mu.Unlock()
	var d rulesetDiff
	if prev != nil {
		keepFailedGroups(prev, rs)
		d = diffRulesets(prev, rs)
	}
	applyPrev := prev
	if full {
		applyPrev = nil
	}
	err = r.backend.Apply(ctx, applyPrev, rs)
	if err != nil && ctx.Err() != nil {
		return false // shutting down: not a failure of the ruleset
	}
	r.record(snap, rs, full, d, err, time.Since(start))
	return err == nil
}

// pace waits, if needed, before a snapshot. A snapshot reads the whole
// store, which serves one writer at a time: under a stream of changes,
// reading again as soon as the last read ended would leave the writers
// waiting most of the time (with 1,000 groups, API writes fell from 172/s
// to 37/s). So reads take at most 1/readPace of the store's time; a change
// after a quiet spell, the usual case, is read at once. It reports false
// when ctx ended first.
func (r *Reconciler) pace(ctx context.Context) bool {
	wait := min(time.Until(r.nextRead), maxReadWait)
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// record notes the outcome of an apply of rs, compiled from snap: per group
// the generation the backend holds or why it does not, and the totals.
func (r *Reconciler) record(snap store.Snapshot, rs *Ruleset, full bool, d rulesetDiff, err error, dur time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.notify()
	r.desired = rs
	r.stats.LastApply = time.Now()
	r.stats.LastApplyDuration = dur
	live := make(map[string]bool, len(snap.Groups))
	for _, g := range snap.Groups {
		live[g.ID] = true
		st := r.groups[g.ID]
		if st == nil {
			st = &groupStatus{}
			r.groups[g.ID] = st
		}
		switch {
		case rs.Errors[g.ID] != nil:
			st.errGen, st.errText = g.Generation, rs.Errors[g.ID].Error()
		case err != nil && full:
			// A full resync replaces the whole table: failed, the kernel
			// holds none of it for sure (it was found lost, or never
			// applied), so no group is available.
			st.applied, st.errGen, st.errText = 0, g.Generation, "apply: "+err.Error()
		case err != nil && d.touched[g.ID]:
			st.errGen, st.errText = g.Generation, "apply: "+err.Error()
		default:
			// Applied, or untouched by a failed batch: the kernel holds
			// the previous ruleset, in which this group already is as
			// wanted.
			st.applied, st.errText = g.Generation, ""
		}
	}
	for id := range r.groups {
		if !live[id] {
			delete(r.groups, id)
		}
	}
	if err != nil {
		r.stats.ApplyErrors++
		r.stats.LastError = err.Error()
		r.log.Error("enforcer apply", "generation", snap.Generation, "full", full,
			"groups", len(d.touched), "duration", dur, "err", err)
		return
	}
	r.applied, r.needFull = rs, false
	r.stats.Applies++
	if full {
		r.stats.FullResyncs++
	}
	r.stats.LastError = ""
	r.stats.AppliedGeneration = snap.Generation
	if full || !d.empty() {
		r.log.Info("enforcer apply", "generation", snap.Generation, "full", full,
			"groups", len(d.touched), "duration", dur)
	}
	for id, e := range rs.Errors {
		r.log.Error("enforcer compile", "group", id, "err", e)
	}
}

// keepFailedGroups makes next keep, for each group that failed to compile
// and that prev holds, what prev enforced for it: its chains, the
// interfaces that jump to them (unless another group now owns that
// interface) and the host's jump to them. A group whose rows cannot be read
// thus stays as the kernel enforced it, rather than opening or closing.
func keepFailedGroups(prev, next *Ruleset) {
	failed := map[string]bool{} // chain names
	for id := range next.Errors {
		old, ok := prev.Group(id)
		if !ok {
			continue // nothing enforced before: the fail-closed chains stay
		}
		i := slices.IndexFunc(next.Groups, func(g GroupChains) bool { return g.GroupID == id })
		next.Groups[i] = old
		failed[old.In.Name], failed[old.Out.Name] = true, true
	}
	if len(failed) == 0 {
		return
	}
	next.ToServer = keepElems(prev.ToServer, next.ToServer, failed)
	next.FromServer = keepElems(prev.FromServer, next.FromServer, failed)
	next.HostIn = keepHostJump(prev.HostIn, next.HostIn, failed)
	next.HostOut = keepHostJump(prev.HostOut, next.HostOut, failed)
	// The kept chains may match sets that next does not hold (their IP
	// set could not be read, or no compiled rule names them any more):
	// those keep prev's elements. A set that next holds has been read
	// whole and keeps next's.
	added := map[string]bool{}
	for id := range next.Errors {
		old, ok := prev.Group(id)
		if !ok {
			continue
		}
		for _, name := range chainSets(old) {
			if _, ok := next.Set(name); ok || added[name] {
				continue
			}
			if s, ok := prev.Set(name); ok {
				next.Sets = append(next.Sets, s)
				added[name] = true
			}
		}
	}
	if len(added) > 0 {
		slices.SortFunc(next.Sets, func(a, b Set) int { return strings.Compare(a.Name, b.Name) })
	}
}

func keepElems(prev, next []MapElem, failed map[string]bool) []MapElem {
	out := make([]MapElem, 0, len(next))
	taken := map[string]bool{}
	for _, e := range next {
		if !failed[e.Chain] {
			out = append(out, e)
			taken[e.IfName] = true
		}
	}
	for _, e := range prev {
		if failed[e.Chain] && !taken[e.IfName] {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b MapElem) int { return strings.Compare(a.IfName, b.IfName) })
	return out
}

// keepHostJump returns prev's host chain when it jumps to a failed group
// and next's does not jump to a group that compiled.
func keepHostJump(prev, next Chain, failed map[string]bool) Chain {
	jumpsTo := func(c Chain) string {
		for _, r := range c.Rules {
			if r.Verdict.Kind == "jump" {
				return r.Verdict.Chain
			}
		}
		return ""
	}
	if n := jumpsTo(next); n != "" && !failed[n] {
		return next
	}
	if failed[jumpsTo(prev)] {
		return prev
	}
	return next
}

// GroupState returns store.Available once the backend holds the group at
// groupGeneration or later, store.SyncingError with the reason when
// applying that generation failed, and store.Syncing otherwise.
func (r *Reconciler) GroupState(groupID string, groupGeneration int64) (state store.SyncState, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.groups[groupID]
	switch {
	case st == nil:
		return store.Syncing, ""
	case st.applied >= groupGeneration && st.applied > 0:
		return store.Available, ""
	case st.errText != "" && st.errGen >= groupGeneration:
		return store.SyncingError, st.errText
	}
	return store.Syncing, ""
}

// GroupGeneration returns the group generation the backend holds, 0 if none.
func (r *Reconciler) GroupGeneration(groupID string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.groups[groupID]; st != nil {
		return st.applied
	}
	return 0
}

// Counters returns the counters of a group's rules as the backend holds
// them, keyed by rule ID, TagDefaultIn, TagDefaultOut, TagEstablishedIn,
// TagEstablishedOut, an SMTP rule ID or TagLogLimited (when the group
// logs). They are the table's named counters: they keep counting across
// rewrites of the group's chains and full resyncs (restarts, drift
// repairs), and restart from zero only when the table itself was deleted
// or ResetCounters zeroes them. It returns an empty map when they cannot
// be read.
func (r *Reconciler) Counters(ctx context.Context, groupID string) map[string]Counter {
	g, ok := r.appliedGroup(groupID)
	if !ok {
		return map[string]Counter{}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := r.backend.GroupCounters(ctx, g)
	if err != nil {
		r.log.Error("enforcer counters", "group", groupID, "err", err)
		return map[string]Counter{}
	}
	return c[groupID]
}

// AllCounters returns the counters of every group the backend holds, by
// group ID and then as Counters keys them, in one read.
func (r *Reconciler) AllCounters(ctx context.Context) (map[string]map[string]Counter, error) {
	r.mu.Lock()
	applied := r.applied
	r.mu.Unlock()
	if applied == nil {
		return map[string]map[string]Counter{}, nil
	}
	c, err := r.backend.GroupCounters(ctx, applied.Groups...)
	if err != nil {
		return nil, fmt.Errorf("counters: %w", err)
	}
	return c, nil
}

// ResetCounters sets the counters of a group to zero, in one request, and
// returns what they held. A group the backend does not hold has nothing to
// reset.
func (r *Reconciler) ResetCounters(ctx context.Context, groupID string) (map[string]Counter, error) {
	g, ok := r.appliedGroup(groupID)
	if !ok {
		return map[string]Counter{}, nil
	}
	c, err := r.backend.ResetCounters(ctx, g)
	if err != nil {
		return nil, fmt.Errorf("reset counters of group %s: %w", groupID, err)
	}
	return c[groupID], nil
}

func (r *Reconciler) appliedGroup(groupID string) (GroupChains, bool) {
	r.mu.Lock()
	applied := r.applied
	r.mu.Unlock()
	if applied == nil {
		return GroupChains{}, false
	}
	return applied.Group(groupID)
}

// SetLogConfig sets where and how fast the groups' logged packets go; it
// takes effect within a check interval, rewriting the chains of the groups
// it changes (their counters go on). Call it before Run for the first
// apply to use it.
func (r *Reconciler) SetLogConfig(cfg LogConfig) {
	r.syncMu.Lock()
	r.compiler.Log = cfg
	r.syncMu.Unlock()
	r.mu.Lock()
	r.recompile = true
	r.mu.Unlock()
}

// Applied returns the Ruleset the backend holds, nil before the first
// successful apply. It must not be modified. A packet log reader uses it
// to name what the log prefixes name.
func (r *Reconciler) Applied() *Ruleset {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied
}

// GroupText returns the nft text of a group's two chains as last compiled.
func (r *Reconciler) GroupText(groupID string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.desired == nil {
		return ""
	}
	return r.desired.GroupText(groupID)
}

// Chains returns the chains the reconciler last compiled for a group,
// applied or not, and false when it has compiled none for it yet (a group
// created a moment ago). Their Generation is the group generation they
// were compiled from; for a group whose stored rows could not be read,
// they are the chains it keeps from an earlier generation. The chains are
// shared and must not be modified.
func (r *Reconciler) Chains(groupID string) (GroupChains, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.desired == nil {
		return GroupChains{}, false
	}
	return r.desired.Group(groupID)
}

// GroupSets returns the sets that the chains Chains returns match, with
// the elements compiled with them (the packet tester needs them beside
// the chains). They are shared and must not be modified.
func (r *Reconciler) GroupSets(groupID string) []Set {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.desired == nil {
		return nil
	}
	return r.desired.GroupSets(groupID)
}

// RulesetText returns the whole table, as last compiled, as an nft script.
func (r *Reconciler) RulesetText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.desired == nil {
		return ""
	}
	return r.desired.Text()
}

// Mode returns the backend's mode ("nftables" or "preview") and, for
// preview, why nothing is enforced.
func (r *Reconciler) Mode() (mode, reason string) { return r.backend.Mode() }

// Stats returns the running totals.
func (r *Reconciler) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// GroupStatus is where the backend stands with one group.
type GroupStatus struct {
	Applied int64  // group generation the backend holds, 0 if none
	Error   string // why the group's last apply (or compile) failed, "" when it did not
	// ErrorGeneration is the group generation whose apply failed.
	ErrorGeneration int64
}

// Groups returns the status of every group of the last snapshot, by ID.
func (r *Reconciler) Groups() map[string]GroupStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]GroupStatus, len(r.groups))
	for id, st := range r.groups {
		out[id] = GroupStatus{Applied: st.applied, Error: st.errText, ErrorGeneration: st.errGen}
	}
	return out
}

// Watch returns a channel that receives (capacity 1, never blocking the
// reconciler) after every apply, failed or not, and every drift repair,
// and a function that stops the notifications: what an agent needs to
// report promptly.
func (r *Reconciler) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	r.watchers[ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.watchers, ch)
		r.mu.Unlock()
	}
}

// notify wakes the watchers; r.mu is held.
func (r *Reconciler) notify() {
	for ch := range r.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
