package fleet

import (
	"context"
	"sync"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// snapshots reads the store's snapshots incrementally (SnapshotSince) for
// several followers: the console's hub and its own reconciler both need
// the latest after every change, and one read serves both. Each read runs
// a transaction the writers wait for; two followers reading the same
// generation each would double the store's time spent reading.
type snapshots struct {
	db *store.DB

	mu   sync.Mutex // held across a read: a second caller waits for it
	last store.Snapshot
}

// latest returns the snapshot of the store's current generation, read now
// unless the last one read is of that generation.
func (s *snapshots) latest(ctx context.Context) (store.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last.Rules != nil {
		if gen, err := s.db.Generation(ctx); err == nil && gen == s.last.Generation {
			return s.last, nil
		}
	}
	snap, err := s.db.SnapshotSince(ctx, s.last) // a whole read the first time
	if err != nil {
		return store.Snapshot{}, err
	}
	s.last = snap
	return snap, nil
}

// HostSource returns the Source of one host's reconciler: the store's
// snapshots narrowed to what the host enforces (store.Snapshot.ForHost),
// read incrementally as the store's are.
func HostSource(db *store.DB, hostID string) enforcer.Source {
	return &hostSource{snaps: &snapshots{db: db}, hostID: hostID}
}

type hostSource struct {
	snaps  *snapshots
	hostID string
}

func (s *hostSource) Snapshot(ctx context.Context) (store.Snapshot, error) {
	snap, err := s.snaps.latest(ctx)
	if err != nil {
		return store.Snapshot{}, err
	}
	return snap.ForHost(s.hostID), nil
}

// SnapshotSince makes the reconciler's reads incremental: the whole
// snapshot behind prev (the host's part of it) is kept by s.snaps.
func (s *hostSource) SnapshotSince(ctx context.Context, _ store.Snapshot) (store.Snapshot, error) {
	return s.Snapshot(ctx)
}

func (s *hostSource) Generation(ctx context.Context) (int64, error) {
	return s.snaps.db.Generation(ctx)
}

func (s *hostSource) Watch() (<-chan struct{}, func()) { return s.snaps.db.Watch() }
