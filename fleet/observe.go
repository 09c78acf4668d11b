package fleet

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/explain"
	"github.com/rampart-fw/rampart/hostview"
	"github.com/rampart-fw/rampart/packetlog"
	"github.com/rampart-fw/rampart/store"
)

// counterInterval is how often the console reads its own host's counters
// and writes the counts that moved, its own and the agents', to the store.
const counterInterval = time.Second

// observer is the console's side of what the hosts observe: the packets
// their rules log, which it names (server, rule position) and queues for
// the store's log, and the counts of their kernels, which it writes to
// the store once a second, only those that moved.
type observer struct {
	db     *store.DB
	log    *slog.Logger
	hub    *hub
	rec    *enforcer.Reconciler
	host   store.Host // the console's own
	writer *store.LogWriter
	onLog  func([]store.LogEntry)

	ixMu sync.Mutex
	ix   *logIndex

	// mu serialises writing counts with resets: a count read from the
	// kernel before a reset must not be written after it.
	mu      sync.Mutex
	written map[string]map[string]map[string]store.Counter // host → group → tag: what the store holds
	pending map[string]map[string]map[string]store.Counter // read, not written yet

	statsMu sync.Mutex
	hosts   map[string]hostview.LogStats // the agents' packet logs, as last reported
	reader  atomic.Pointer[packetlog.Reader]
}

func newObserver(db *store.DB, h *hub, rec *enforcer.Reconciler, host store.Host, log *slog.Logger, onLog func([]store.LogEntry)) *observer {
	o := &observer{db: db, log: log, hub: h, rec: rec, host: host, writer: db.NewLogWriter(), onLog: onLog,
		written: map[string]map[string]map[string]store.Counter{}, pending: map[string]map[string]map[string]store.Counter{},
		hosts: map[string]hostview.LogStats{}}
	o.writer.OnError = func(err error, n int) {
		log.Error("fleet: write the packet log", "entries", n, "err", err)
	}
	return o
}

// run writes the log and the counts until ctx ends; with a packet log
// configuration (the console's own host enforcing with nftables), it reads
// the host's logged packets too.
func (o *observer) run(ctx context.Context, cfg *packetlog.Config) {
	// The writer stops after the reader, so that the entries the reader
	// delivers as it closes are written.
	writerCtx, stopWriter := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { o.writer.Run(writerCtx) })
	var reader *packetlog.Reader
	if cfg != nil {
		c := *cfg
		c.Deliver = func(entries []packetlog.Entry, _ packetlog.Stats) { o.ingestOwn(entries) }
		r, err := packetlog.Start(ctx, c)
		if err != nil {
			// The firewall does not depend on its log: enforce without it.
			o.log.Error("fleet: the packet log of this host cannot be read; enforcing without it", "err", err)
		} else {
			reader = r
			o.reader.Store(r)
			group := c.Group
			if group == 0 {
				group = enforcer.DefaultLogGroup
			}
			o.log.Info("fleet: reading the packet log", "nflog_group", group)
		}
	}
	// A preview counts nothing: its counters are zeros, not worth reading
	// each second.
	mode, _ := o.rec.Mode()
	own := mode == enforcer.ModeNFTables
	t := time.NewTicker(counterInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if reader != nil {
				reader.Close()
			}
			stopWriter()
			wg.Wait()
			flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			o.flushCounters(flush, false)
			cancel()
			return
		case <-t.C:
			o.flushCounters(ctx, own)
		}
	}
}

// ingestOwn keeps the entries of the console's own host.
func (o *observer) ingestOwn(entries []packetlog.Entry) {
	out := make([]store.LogEntry, len(entries))
	for i, e := range entries {
		out[i] = store.LogEntry{Time: e.Time, GroupID: e.GroupID, Direction: e.Direction, Protocol: e.Protocol,
			Source: e.Source, SourcePort: e.SourcePort, Destination: e.Destination, DestinationPort: e.DestinationPort,
			Verdict: e.Verdict, DecidedBy: store.Decider{Kind: string(e.DecidedBy.Kind), RuleID: e.DecidedBy.RuleID}}
	}
	o.ingest(o.host, out)
}

// ingestAgent keeps the entries an agent sent.
func (o *observer) ingestAgent(h store.Host, entries []hostview.LogEntry, st hostview.LogStats) {
	o.statsMu.Lock()
	o.hosts[h.ID] = st
	o.statsMu.Unlock()
	if len(entries) == 0 {
		return
	}
	out := make([]store.LogEntry, len(entries))
	for i, e := range entries {
		out[i] = store.LogEntry{Time: e.Time, GroupID: e.GroupID, Direction: e.Direction, Protocol: e.Protocol,
			Source: e.Source, SourcePort: e.SourcePort, Destination: e.Destination, DestinationPort: e.DestinationPort,
			Verdict: e.Verdict, DecidedBy: e.DecidedBy}
	}
	o.ingest(h, out)
}

// ingest names the host, the server and the rule's position of entries
// from host h, and queues them for the store (and the log file).
func (o *observer) ingest(h store.Host, entries []store.LogEntry) {
	ix := o.index()
	for i := range entries {
		e := &entries[i]
		e.Host = h.Name
		e.ServerID = ix.servers[h.ID][e.LocalAddr().Unmap()]
		if d, ok := ix.rules[e.GroupID][e.DecidedBy.RuleID]; ok && e.DecidedBy.RuleID != "" {
			e.DecidedBy = d
		}
	}
	if o.onLog != nil {
		o.onLog(entries)
	}
	o.writer.Add(entries)
}

// logIndex names what entries refer to, from a snapshot of the store: the
// servers of each host by address, and the rules (SMTP rules included) of
// each group with their positions.
type logIndex struct {
	gen     int64
	servers map[string]map[netip.Addr]string    // host ID → address → server ID
	rules   map[string]map[string]store.Decider // group ID → rule ID → decider
}

// index returns the index of the hub's latest snapshot, made again only
// when its generation moved.
func (o *observer) index() *logIndex {
	snap := o.hub.snapshot()
	o.ixMu.Lock()
	defer o.ixMu.Unlock()
	if o.ix != nil && o.ix.gen == snap.Generation {
		return o.ix
	}
	ix := &logIndex{gen: snap.Generation, servers: map[string]map[netip.Addr]string{}, rules: map[string]map[string]store.Decider{}}
	for _, s := range snap.Servers {
		m := ix.servers[s.HostID]
		if m == nil {
			m = map[netip.Addr]string{}
			ix.servers[s.HostID] = m
		}
		for _, a := range s.Addresses {
			m[a.Unmap()] = s.ID
		}
	}
	for _, g := range snap.Groups {
		m := map[string]store.Decider{}
		if !g.SMTPEnabled {
			for _, r := range store.SMTPRules(g.ID) {
				m[r.ID] = store.Decider{Kind: string(explain.KindSMTP), RuleID: r.ID, Position: r.Position}
			}
		}
		for _, r := range snap.Rules[g.ID] {
			m[r.ID] = store.Decider{Kind: string(explain.KindRule), RuleID: r.ID, Position: r.Position}
		}
		ix.rules[g.ID] = m
	}
	o.ix = ix
	return ix
}

// hostCounters takes counts an agent reported (all of its groups', or
// those that moved): those that differ from what the store holds are
// written at the next flush.
func (o *observer) hostCounters(hostID string, counters map[string]map[string]hostview.Counter) {
	in := make(map[string]map[string]store.Counter, len(counters))
	for gid, tags := range counters {
		m := make(map[string]store.Counter, len(tags))
		for tag, c := range tags {
			m[tag] = store.Counter{Packets: c.Packets, Bytes: c.Bytes}
		}
		in[gid] = m
	}
	o.mu.Lock()
	o.merge(hostID, in)
	o.mu.Unlock()
}

// merge queues the counts of in that differ from what the store holds; mu
// is held.
func (o *observer) merge(hostID string, in map[string]map[string]store.Counter) {
	for gid, tags := range in {
		for tag, c := range tags {
			w, ok := o.written[hostID][gid][tag]
			// A count that never moved is not written: rules that never
			// match cost no row. (One the store holds and the kernel now
			// reads zero for is compared once it moves again.)
			if ok && w == c || !ok && c == (store.Counter{}) {
				continue
			}
			hp := o.pending[hostID]
			if hp == nil {
				hp = map[string]map[string]store.Counter{}
				o.pending[hostID] = hp
			}
			if hp[gid] == nil {
				hp[gid] = map[string]store.Counter{}
			}
			hp[gid][tag] = c
		}
	}
}

// flushCounters reads the console's own host's counts (when own), and
// writes what moved, of every host, in one write.
func (o *observer) flushCounters(ctx context.Context, own bool) {
	var kernel map[string]map[string]enforcer.Counter
	if own {
		var err error
		if kernel, err = o.rec.AllCounters(ctx); err != nil && ctx.Err() == nil {
			o.log.Warn("fleet: read this host's counters", "err", err)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(kernel) > 0 {
		in := make(map[string]map[string]store.Counter, len(kernel))
		for gid, tags := range kernel {
			m := make(map[string]store.Counter, len(tags))
			for tag, c := range tags {
				m[tag] = store.Counter{Packets: c.Packets, Bytes: c.Bytes}
			}
			in[gid] = m
		}
		o.merge(o.host.ID, in)
	}
	if len(o.pending) == 0 {
		return
	}
	hosts := make([]store.HostCounters, 0, len(o.pending))
	for id, groups := range o.pending {
		hosts = append(hosts, store.HostCounters{HostID: id, Groups: groups})
	}
	if err := o.db.RecordCounters(ctx, time.Now(), hosts...); err != nil {
		if ctx.Err() == nil {
			o.log.Error("fleet: keep counters", "err", err)
		}
		return // kept pending: the next flush tries again
	}
	for id, groups := range o.pending {
		hw := o.written[id]
		if hw == nil {
			hw = map[string]map[string]store.Counter{}
			o.written[id] = hw
		}
		for gid, tags := range groups {
			if hw[gid] == nil {
				hw[gid] = map[string]store.Counter{}
			}
			maps.Copy(hw[gid], tags)
		}
	}
	o.pending = map[string]map[string]map[string]store.Counter{}
}

// forget drops what is known of a host's counts (a session of an agent
// that starts again: it sends them all, and they are compared anew).
func (o *observer) forget(hostID string) {
	o.mu.Lock()
	delete(o.written, hostID)
	o.mu.Unlock()
}

// reset zeroes a group's counters on every host: the console's own
// kernel's where it holds the group, the others' through the store (see
// store.DB.ResetCounters). The group is checked first: another
// organization's is not found, and nothing is reset.
func (o *observer) reset(ctx context.Context, orgID, zone, groupID string) error {
	if _, err := o.db.Group(ctx, orgID, zone, groupID); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	zeroed := ""
	if mode, _ := o.rec.Mode(); mode == enforcer.ModeNFTables {
		held, err := o.rec.ResetCounters(ctx, groupID)
		if err != nil {
			o.log.Warn("fleet: reset this host's counters; they are zeroed in the store alone", "group", groupID, "err", err)
		} else if len(held) > 0 {
			zeroed = o.host.ID
		}
	}
	// What was read from the kernel before is stale either way.
	delete(o.pending[o.host.ID], groupID)
	delete(o.written[o.host.ID], groupID)
	return o.db.ResetCounters(ctx, orgID, zone, groupID, zeroed)
}

// LogStats are the packet log's totals as this console knows them.
type LogStats struct {
	// Received counts the entries the hosts' kernels delivered: this
	// host's since the console started, and each agent's as it last
	// reported (since that agent started).
	Received uint64
	// BufferDrops counts the entries the kernels dropped for lack of
	// buffer, likewise.
	BufferDrops uint64
	// Dropped counts the entries that could not be kept: agents' queues
	// full while no console took them, and this console's queue to the
	// store full or its writes failed.
	Dropped uint64
	// Stored counts the entries this console wrote to the store.
	Stored uint64
}

func (o *observer) stats() LogStats {
	var st LogStats
	if r := o.reader.Load(); r != nil {
		rs := r.Stats()
		st.Received, st.BufferDrops = rs.Received, rs.BufferDrops
	}
	o.statsMu.Lock()
	for _, h := range o.hosts {
		st.Received += h.Received
		st.BufferDrops += h.BufferDrops
		st.Dropped += h.Dropped
	}
	o.statsMu.Unlock()
	ws := o.writer.Stats()
	st.Dropped += ws.Dropped + ws.Failed
	st.Stored = ws.Stored
	return st
}
