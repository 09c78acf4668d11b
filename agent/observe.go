package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/hostview"
	"github.com/rampart-fw/rampart/packetlog"
	"github.com/rampart-fw/rampart/store"
)

// Observations: the packets this host's rules log and its counters go to
// the console it follows, about every second while something is new. The
// kernel's counters are read back (nothing per packet in user space); the
// log is what the kernel's rate limit let through.
const (
	observeInterval = time.Second
	// maxQueuedEntries bounds the entries waiting for a console: while
	// none takes them, the newest are dropped and counted.
	maxQueuedEntries = 10_000
	// maxEntriesPerPost bounds one Observations message.
	maxEntriesPerPost = 5_000
)

// logQueue holds the entries read from the kernel until a console takes
// them.
type logQueue struct {
	mu      sync.Mutex
	entries []hostview.LogEntry
	dropped atomic.Uint64
	reader  atomic.Pointer[packetlog.Reader]
}

// add queues entries read from the kernel.
func (q *logQueue) add(entries []packetlog.Entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range entries {
		if len(q.entries) >= maxQueuedEntries {
			q.dropped.Add(1)
			continue
		}
		q.entries = append(q.entries, hostview.LogEntry{Time: e.Time, GroupID: e.GroupID, Direction: e.Direction,
			Protocol: e.Protocol, Source: e.Source, SourcePort: e.SourcePort, Destination: e.Destination,
			DestinationPort: e.DestinationPort, Verdict: e.Verdict,
			DecidedBy: store.Decider{Kind: string(e.DecidedBy.Kind), RuleID: e.DecidedBy.RuleID}})
	}
}

// take removes up to n entries from the front.
func (q *logQueue) take(n int) []hostview.LogEntry {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.entries))
	out := make([]hostview.LogEntry, n)
	copy(out, q.entries)
	q.entries = q.entries[n:]
	return out
}

// putBack returns entries a console did not take to the front, as far as
// there is room.
func (q *logQueue) putBack(entries []hostview.LogEntry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	room := max(maxQueuedEntries-len(q.entries), 0)
	if len(entries) > room {
		q.dropped.Add(uint64(len(entries) - room))
		entries = entries[len(entries)-room:]
	}
	q.entries = append(entries, q.entries...)
}

// discard drops what is queued, counted.
func (q *logQueue) discard() {
	q.mu.Lock()
	q.dropped.Add(uint64(len(q.entries)))
	q.entries = nil
	q.mu.Unlock()
}

func (q *logQueue) stats() hostview.LogStats {
	st := hostview.LogStats{Dropped: q.dropped.Load()}
	if r := q.reader.Load(); r != nil {
		rs := r.Stats()
		st.Received, st.BufferDrops = rs.Received, rs.BufferDrops
	}
	return st
}

// readLog reads the host's packet log until ctx ends, when the agent has a
// packet log configuration and enforces with nftables. A log that cannot
// be read is said, and the host enforced without it.
func (a *Agent) readLog(ctx context.Context) {
	if a.cfg.PacketLog == nil {
		return
	}
	if mode, _ := a.cfg.Backend.Mode(); mode != enforcer.ModeNFTables {
		return
	}
	c := *a.cfg.PacketLog
	c.Deliver = func(entries []packetlog.Entry, _ packetlog.Stats) { a.logq.add(entries) }
	r, err := packetlog.Start(ctx, c)
	if err != nil {
		a.log.Error("agent: the packet log cannot be read; enforcing without it", "err", err)
		return
	}
	a.logq.reader.Store(r)
	<-ctx.Done()
	r.Close()
}

// observe sends the console the entries read and the counters that moved,
// every observeInterval while there is something to send. A console older
// than Observations answers 404: entries are then dropped (counted), and
// the counters go with the heartbeat reports alone, as before.
func (a *Agent) observe(ctx context.Context) {
	tick := time.NewTicker(observeInterval)
	defer tick.Stop()
	var (
		session     *http.Client
		sent        map[string]map[string]hostview.Counter // accepted by the console this session
		unsupported bool
		lastStats   hostview.LogStats
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		a.mu.Lock()
		client, base := a.client, a.base
		hostID := ""
		if a.cred != nil {
			hostID = a.cred.cred.HostID
		}
		a.mu.Unlock()
		if client == nil {
			continue // entries wait, within their bound
		}
		if client != session {
			// A new session, maybe another console: everything again.
			session, sent, unsupported = client, nil, false
		}
		if unsupported {
			a.logq.discard()
			continue
		}
		moved := map[string]map[string]hostview.Counter{}
		if all, err := a.rec.AllCounters(ctx); err == nil {
			for gid, tags := range all {
				for tag, c := range tags {
					hc := hostview.Counter{Packets: c.Packets, Bytes: c.Bytes}
					if old, ok := sent[gid][tag]; ok && old == hc {
						continue
					}
					if moved[gid] == nil {
						moved[gid] = map[string]hostview.Counter{}
					}
					moved[gid][tag] = hc
				}
			}
		}
		entries := a.logq.take(maxEntriesPerPost)
		st := a.logq.stats()
		if len(moved) == 0 && len(entries) == 0 && st == lastStats {
			continue
		}
		body, _ := json.Marshal(hostview.Observations{HostID: hostID, Entries: entries, Counters: moved, Log: st})
		err := post(ctx, client, base+hostview.ObservationsPath(hostID), body, nil)
		var refused *RefusedError
		switch {
		case err == nil:
			if sent == nil {
				sent = map[string]map[string]hostview.Counter{}
			}
			for gid, tags := range moved {
				if sent[gid] == nil {
					sent[gid] = map[string]hostview.Counter{}
				}
				for tag, c := range tags {
					sent[gid][tag] = c
				}
			}
			lastStats = st
		case errors.As(err, &refused) && refused.Status == http.StatusNotFound:
			a.log.Warn("agent: the console does not take observations (an older release): the packet log is not forwarded; counters go with the heartbeat reports", "console", base)
			unsupported = true
			a.logq.putBack(entries)
			a.logq.discard()
		default:
			a.logq.putBack(entries)
			if ctx.Err() == nil {
				a.log.Warn("agent: send observations", "console", base, "err", err)
			}
		}
	}
}
