package fleet

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/rampart-fw/rampart/hostview"
	"github.com/rampart-fw/rampart/store"
)

// reportFlushInterval is how often the reports received are written to the
// store: at most once per host per interval, the last one winning. An
// agent reports after every apply, and a report rewrites its host's groups;
// writing each would double the store's writes under a stream of changes.
const reportFlushInterval = time.Second

// reportRefreshInterval is how often the reports other consoles wrote are
// read back from the store.
const reportRefreshInterval = time.Second

// reportBook holds every host's last report: those this console received
// (at once) and those the store holds (written by other consoles on the
// same database, read once a second).
type reportBook struct {
	db  *store.DB
	log *slog.Logger

	mu      sync.Mutex
	byHost  map[string]store.HostReport
	pending map[string]store.HostReport // received, not yet written
}

func newReportBook(db *store.DB, log *slog.Logger) *reportBook {
	return &reportBook{db: db, log: log, byHost: map[string]store.HostReport{}, pending: map[string]store.HostReport{}}
}

// receive keeps a report of host hostID seen at now, to be written to the
// store at the next flush.
func (b *reportBook) receive(hostID string, r hostview.Report, now time.Time) {
	sr := r.StoreReport(now)
	b.mu.Lock()
	defer b.mu.Unlock()
	// A heartbeat has no groups: they are as last reported. The pending
	// write keeps those of an earlier report not written yet, or none,
	// which keeps the store's.
	mem, pend := sr, sr
	if sr.Groups == nil {
		mem.Groups = b.byHost[hostID].Groups
		pend.Groups = b.pending[hostID].Groups
	}
	b.byHost[hostID] = mem
	b.pending[hostID] = pend
}

// flush writes the pending reports.
func (b *reportBook) flush(ctx context.Context) {
	b.mu.Lock()
	pending := b.pending
	b.pending = map[string]store.HostReport{}
	b.mu.Unlock()
	for id, r := range pending {
		if err := b.db.RecordHostReport(ctx, id, r); err != nil && ctx.Err() == nil {
			// A host removed meanwhile has nowhere to keep it.
			b.log.Warn("fleet: keep a host's report", "host", id, "err", err)
		}
	}
}

// refresh reads the reports the store holds that are newer than the ones
// received here, and keeps them.
func (b *reportBook) refresh(ctx context.Context) {
	b.mu.Lock()
	known := make(map[string]time.Time, len(b.byHost))
	for id, r := range b.byHost {
		known[id] = r.LastSeen
	}
	b.mu.Unlock()
	newer, present, err := b.db.HostReportsNewer(ctx, known)
	if err != nil {
		if ctx.Err() == nil {
			b.log.Error("fleet: read host reports", "err", err)
		}
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, r := range newer {
		if r.LastSeen.After(b.byHost[id].LastSeen) {
			b.byHost[id] = r
		}
	}
	for id := range b.byHost {
		if !present[id] {
			if _, waiting := b.pending[id]; !waiting {
				delete(b.byHost, id) // the host was removed
			}
		}
	}
}

// run flushes and refreshes until ctx ends, then flushes once more.
func (b *reportBook) run(ctx context.Context) {
	t := time.NewTicker(reportFlushInterval)
	defer t.Stop()
	b.refresh(ctx)
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			b.flush(flushCtx)
			cancel()
			return
		case <-t.C:
			b.flush(ctx)
			b.refresh(ctx)
		}
	}
}

// all returns every report known, by host ID.
func (b *reportBook) all() map[string]store.HostReport {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.byHost)
}

// get returns one host's report.
func (b *reportBook) get(hostID string) (store.HostReport, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.byHost[hostID]
	return r, ok
}
