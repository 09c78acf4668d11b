// Package fleet is the console's side of many hosts: the agents' CA and
// their credentials, the agents' endpoint (enrolment, the view stream,
// reports, renewal), the hub that computes each host's view once per
// change, and the state of hosts and of groups across them, which the web
// layer reads through Console.
//
// The console's own host is a host like the others: its reconciler applies
// only its view (store.Snapshot.ForHost), and its reports are kept as an
// agent's.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/hostview"
	"github.com/rampart-fw/rampart/packetlog"
	"github.com/rampart-fw/rampart/store"
)

// Defaults of Config.
const (
	DefaultLostAfter    = 30 * time.Second
	DefaultCertLifetime = 30 * 24 * time.Hour
	// serverCertLifetime is the console's TLS certificate's, renewed in
	// memory at two thirds.
	serverCertLifetime = 90 * 24 * time.Hour
)

// Config sets up a Console.
type Config struct {
	Store *store.DB
	// Host is the console's own host (store.DB.EnsureHost).
	Host store.Host
	// Backend enforces the console's own host's view, through the
	// console's reconciler.
	Backend enforcer.Backend
	Logger  *slog.Logger
	Version string
	// LostAfter is the silence after which a host is lost (0:
	// DefaultLostAfter).
	LostAfter time.Duration
	// Heartbeat is how often the view stream carries a heartbeat and
	// agents report without a change (0: a third of LostAfter).
	Heartbeat time.Duration
	// JoinTokenTTL is how long a join token may be redeemed (0:
	// store.DefaultJoinTokenTTL).
	JoinTokenTTL time.Duration
	// CertLifetime is the lifetime of the hosts' certificates, which their
	// agents renew after two thirds of it (0: DefaultCertLifetime).
	CertLifetime time.Duration
	// PacketLog, when set, reads the packets the console's own host logs
	// (NFLOG) into the store's log, while Backend enforces with nftables;
	// its Deliver is the console's. The agents' entries are kept either
	// way.
	PacketLog *packetlog.Config
	// OnLog, when set, is given every entry kept, of every host, before it
	// is written to the store (serve's --log-file). It must not block.
	OnLog func([]store.LogEntry)
}

// Console keeps the hosts' views and states. It implements the web
// layer's Enforcer: group states aggregate over every host holding the
// group's servers; the compiled text and the mode are the console's own
// reconciler's. It keeps what the hosts observe in the store: the packets
// their rules log, and their counters, added up over hosts there. Its
// methods are safe for concurrent use.
type Console struct {
	db      *store.DB
	host    store.Host
	rec     *enforcer.Reconciler
	log     *slog.Logger
	version string

	lostAfter, heartbeat, tokenTTL, certLifetime time.Duration

	ca      *CA
	hub     *hub
	reports *reportBook
	ready   chan struct{}
	enrols  *rate.Limiter // enrolment is unauthenticated: a bound on its store writes
	now     func() time.Time
	traffic traffic
	obs     *observer
	logCfg  *packetlog.Config
}

// New returns the Console of cfg, loading (or creating) the agents' CA.
// Nothing runs until Run.
func New(ctx context.Context, cfg Config) (*Console, error) {
	if cfg.Store == nil || cfg.Backend == nil || cfg.Host.ID == "" {
		return nil, errors.New("fleet: a store, the console's host and a backend are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{db: cfg.Store, host: cfg.Host, log: cfg.Logger, version: cfg.Version,
		lostAfter: cfg.LostAfter, heartbeat: cfg.Heartbeat, tokenTTL: cfg.JoinTokenTTL, certLifetime: cfg.CertLifetime,
		ready: make(chan struct{}), enrols: rate.NewLimiter(20, 100), now: time.Now}
	if c.lostAfter <= 0 {
		c.lostAfter = DefaultLostAfter
	}
	if c.heartbeat <= 0 {
		c.heartbeat = c.lostAfter / 3
	}
	if c.tokenTTL <= 0 {
		c.tokenTTL = store.DefaultJoinTokenTTL
	}
	if c.certLifetime <= 0 {
		c.certLifetime = DefaultCertLifetime
	}
	var err error
	if c.ca, err = LoadCA(ctx, c.db); err != nil {
		return nil, err
	}
	// The hub and the console's own reconciler follow the store through
	// one reader: one read per change serves both.
	snaps := &snapshots{db: c.db}
	c.hub = newHub(snaps, c.log)
	c.rec = enforcer.NewReconciler(&hostSource{snaps: snaps, hostID: c.host.ID}, cfg.Backend, c.log)
	c.reports = newReportBook(c.db, c.log)
	c.obs = newObserver(c.db, c.hub, c.rec, c.host, c.log, cfg.OnLog)
	if mode, _ := cfg.Backend.Mode(); mode == enforcer.ModeNFTables {
		c.logCfg = cfg.PacketLog // a preview enforces nothing, and logs nothing
	}
	return c, nil
}

// Reconciler returns the reconciler of the console's own host.
func (c *Console) Reconciler() *enforcer.Reconciler { return c.rec }

// CA returns the agents' CA.
func (c *Console) CA() *CA { return c.ca }

// Run runs the console's reconciler, the hub and the reports' keeping
// until ctx ends. The ruleset stays in the kernel after it returns.
func (c *Console) Run(ctx context.Context) error {
	wake, cancel := c.rec.Watch()
	defer cancel()
	var wg sync.WaitGroup
	var recErr error
	wg.Go(func() { recErr = c.rec.Run(ctx) })
	wg.Go(func() { c.hub.run(ctx) })
	wg.Go(func() { c.reports.run(ctx) })
	wg.Go(func() { c.reportOwn(ctx, wake) })
	wg.Go(func() { c.obs.run(ctx, c.logCfg) })
	wg.Wait()
	return recErr
}

// ResetGroupCounters zeroes the counters of a group of the organization on
// every host, audited (see store.DB.ResetCounters): the console's own
// kernel's are reset; the other hosts' kernels count on, and the store
// offsets them.
func (c *Console) ResetGroupCounters(ctx context.Context, orgID, zone, groupID string) error {
	return c.obs.reset(ctx, orgID, zone, groupID)
}

// LogStats returns the packet log's totals as this console knows them.
func (c *Console) LogStats() LogStats { return c.obs.stats() }

// reportOwn keeps the reports of the console's own host, as an agent
// sends them: after every apply, and at every heartbeat.
func (c *Console) reportOwn(ctx context.Context, applied <-chan struct{}) {
	select {
	case <-ctx.Done():
		return
	case <-c.rec.Ready():
	}
	send := func(heartbeat bool) {
		r := hostview.NewReport(c.host.ID, c.version, c.rec.Stats(), c.rec.Groups())
		if heartbeat {
			r.Heartbeat, r.Groups = true, nil
		}
		c.reports.receive(c.host.ID, r, c.now())
	}
	send(false)
	select {
	case <-ctx.Done():
		return
	case <-c.hub.ready:
	}
	close(c.ready)
	tick := time.NewTicker(c.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-applied:
			send(false)
		case <-tick.C:
			send(true)
		}
	}
}

// Ready is closed once the console's own host was first applied and
// reported, and the hosts' views computed.
func (c *Console) Ready() <-chan struct{} { return c.ready }

// Unreadable returns, by group, the stored rows that the store could not
// read, in the snapshot the console follows.
func (c *Console) Unreadable() map[string][]string { return c.hub.snapshot().Unreadable }

// Mode returns the console's own reconciler's backend mode.
func (c *Console) Mode() (mode, reason string) { return c.rec.Mode() }

// Chains returns the chains the console's own reconciler last compiled
// for a group, for the packet tester (which compiles the group itself
// when it is not on this host).
func (c *Console) Chains(groupID string) (enforcer.GroupChains, bool) { return c.rec.Chains(groupID) }

// GroupSets returns the sets that the chains of Chains match, with their
// elements: what explain.NewGroup takes beside the chains.
func (c *Console) GroupSets(groupID string) []enforcer.Set { return c.rec.GroupSets(groupID) }

// Stats returns the console's own reconciler's totals.
func (c *Console) Stats() enforcer.Stats { return c.rec.Stats() }

// GroupText returns the nft text of a group's chains: as the console's own
// host applies them, or, for a group on other hosts only, compiled from
// the store as they do.
func (c *Console) GroupText(groupID string) string {
	if t := c.rec.GroupText(groupID); t != "" {
		return t
	}
	snap := c.hub.snapshot()
	i, ok := slices.BinarySearchFunc(snap.Groups, groupID, func(g store.Group, id string) int { return strings.Compare(g.ID, id) })
	if !ok {
		return ""
	}
	one := store.Snapshot{Generation: snap.Generation, Groups: snap.Groups[i : i+1], Rules: map[string][]store.Rule{},
		Unreadable: map[string][]string{}}
	if r, ok := snap.Rules[groupID]; ok {
		one.Rules[groupID] = r
	}
	if u, ok := snap.Unreadable[groupID]; ok {
		one.Unreadable[groupID] = u
	}
	return enforcer.Compile(one).GroupText(groupID)
}

// The states and statuses of hosts are the store's types (one home for
// what the console shows): these names keep fleet's code short.
type (
	HostState  = store.HostState
	HostStatus = store.HostStatus
	GroupHost  = store.GroupOnHost
)

// Host states.
const (
	HostPending = store.HostPending // no report yet (not enrolled, or enrolled and silent)
	HostReady   = store.HostReady   // holds the view of the latest change to it
	HostSyncing = store.HostSyncing // has not applied the latest view yet
	HostError   = store.HostError   // an apply failed, on the whole or for a group
	HostLost    = store.HostLost    // silent for longer than Config.LostAfter
)

// Hosts returns every host, by name, with its last report and its state.
func (c *Console) Hosts(ctx context.Context) ([]HostStatus, error) {
	hosts, err := c.db.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	reports, changes, now := c.reports.all(), c.hub.hostChanges(), c.now()
	out := make([]HostStatus, len(hosts))
	for i, h := range hosts {
		if r, ok := reports[h.ID]; ok && !h.Report.LastSeen.After(r.LastSeen) {
			h.Report = r
		}
		st, detail := c.hostState(h, changes[h.ID], now)
		out[i] = HostStatus{Host: h, State: st, Detail: detail}
	}
	return out, nil
}

// hostState returns the state of h, whose view last changed at generation
// lastChange.
func (c *Console) hostState(h store.Host, lastChange int64, now time.Time) (HostState, string) {
	r := h.Report
	switch {
	case r.LastSeen.IsZero() && h.EnrolledAt.IsZero():
		return HostPending, "waiting for its agent to enrol"
	case r.LastSeen.IsZero():
		return HostPending, "enrolled; no report yet"
	case now.Sub(r.LastSeen) > c.lostAfter:
		return HostLost, lostDetail(r.LastSeen, now)
	case r.Error != "":
		return HostError, r.Error
	}
	ids := make([]string, 0, len(r.Groups))
	for id, g := range r.Groups {
		if g.Error != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		slices.Sort(ids)
		return HostError, fmt.Sprintf("group %s: %s", ids[0], r.Groups[ids[0]].Error)
	}
	if r.AppliedGeneration < lastChange {
		return HostSyncing, fmt.Sprintf("holds generation %d; its view changed at %d", r.AppliedGeneration, lastChange)
	}
	return HostReady, ""
}

func lostDetail(lastSeen, now time.Time) string {
	return fmt.Sprintf("no report for %s (last at %s)", now.Sub(lastSeen).Round(time.Second), lastSeen.UTC().Format(time.RFC3339))
}

// GroupHosts returns, for each host holding the group's servers (by host
// name), where it stands with the group's generation.
func (c *Console) GroupHosts(groupID string, generation int64) []GroupHost {
	hosts, _ := c.hub.groupHolders(groupID)
	now := c.now()
	out := make([]GroupHost, 0, len(hosts))
	for _, h := range hosts {
		st, detail := c.groupOnHost(h, groupID, generation, now)
		out = append(out, GroupHost{HostID: h.ID, HostName: h.Name, State: st, Detail: detail})
	}
	return out
}

// groupOnHost says where host h stands with generation gen of a group.
func (c *Console) groupOnHost(h store.Host, groupID string, gen int64, now time.Time) (store.SyncState, string) {
	r, ok := c.reports.get(h.ID)
	switch {
	case !ok || r.LastSeen.IsZero():
		return store.Syncing, "host " + h.Name + " has not reported yet"
	case now.Sub(r.LastSeen) > c.lostAfter:
		return store.SyncingError, "host " + h.Name + " is lost: " + lostDetail(r.LastSeen, now)
	}
	g := r.Groups[groupID]
	switch {
	case g.Error != "":
		return store.SyncingError, "host " + h.Name + ": " + g.Error
	case g.AppliedGeneration >= gen && g.AppliedGeneration > 0:
		return store.Available, ""
	}
	return store.Syncing, fmt.Sprintf("host %s holds generation %d", h.Name, g.AppliedGeneration)
}

// GroupState returns a group's state over the hosts holding its servers:
// syncing until every one of them applied generation, syncing_error
// (naming the hosts and why) when one failed or is lost, available
// otherwise, and with no servers.
func (c *Console) GroupState(groupID string, generation int64) (store.SyncState, string) {
	hosts, seen := c.hub.groupHolders(groupID)
	if generation > seen {
		return store.Syncing, "" // not read here yet: which hosts hold it is not known
	}
	now := c.now()
	state := store.Available
	var errs []string
	for _, h := range hosts {
		st, detail := c.groupOnHost(h, groupID, generation, now)
		switch st {
		case store.SyncingError:
			state = store.SyncingError
			errs = append(errs, detail)
		case store.Syncing:
			if state == store.Available {
				state = store.Syncing
			}
		}
	}
	return state, strings.Join(errs, "; ")
}

// CreateHost adds a host and returns it with its join token.
func (c *Console) CreateHost(ctx context.Context, name string) (store.Host, string, error) {
	h, secret, err := c.db.CreateHost(ctx, name, c.tokenTTL)
	if err != nil {
		return store.Host{}, "", err
	}
	return h, hostview.JoinToken{Secret: secret, Pin: c.ca.Pin()}.String(), nil
}

// JoinToken turns a join secret the store made into the token an agent is
// given: the secret and the pin of this console's CA.
func (c *Console) JoinToken(_ context.Context, secret string) (string, error) {
	return hostview.JoinToken{Secret: secret, Pin: c.ca.Pin()}.String(), nil
}

// NewJoinToken gives a host a new join token (an agent reinstalled).
func (c *Console) NewJoinToken(ctx context.Context, name string) (store.Host, string, error) {
	h, secret, err := c.db.NewJoinToken(ctx, name, c.tokenTTL)
	if err != nil {
		return store.Host{}, "", err
	}
	return h, hostview.JoinToken{Secret: secret, Pin: c.ca.Pin()}.String(), nil
}

// RemoveHost removes a host: its agent is refused from then on, and its
// view stream ends at once.
func (c *Console) RemoveHost(ctx context.Context, name string) (store.Host, error) {
	h, err := c.db.RemoveHost(ctx, name)
	if err != nil {
		return store.Host{}, err
	}
	c.hub.wake()
	return h, nil
}

// CreateHost adds a host to the database and returns it with its join
// token, for the command line: the console need not run.
func CreateHost(ctx context.Context, db *store.DB, name string, ttl time.Duration) (store.Host, string, error) {
	ca, err := LoadCA(ctx, db)
	if err != nil {
		return store.Host{}, "", err
	}
	h, secret, err := db.CreateHost(ctx, name, ttl)
	if err != nil {
		return store.Host{}, "", err
	}
	return h, hostview.JoinToken{Secret: secret, Pin: ca.Pin()}.String(), nil
}

// NewJoinToken gives the host called name a new join token, for the
// command line.
func NewJoinToken(ctx context.Context, db *store.DB, name string, ttl time.Duration) (store.Host, string, error) {
	ca, err := LoadCA(ctx, db)
	if err != nil {
		return store.Host{}, "", err
	}
	h, secret, err := db.NewJoinToken(ctx, name, ttl)
	if err != nil {
		return store.Host{}, "", err
	}
	return h, hostview.JoinToken{Secret: secret, Pin: ca.Pin()}.String(), nil
}
