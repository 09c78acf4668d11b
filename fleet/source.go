package fleet

import (
	"context"
	"sync"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// HostSource returns the Source of one host's reconciler: the store's
// snapshots narrowed to what the host enforces (store.Snapshot.ForHost),
// read incrementally as the store's are.
func HostSource(db *store.DB, hostID string) enforcer.Source {
	return &hostSource{db: db, hostID: hostID}
}

type hostSource struct {
	db     *store.DB
	hostID string

	mu   sync.Mutex
	full store.Snapshot // the last whole snapshot read, for SnapshotSince
}

func (s *hostSource) Snapshot(ctx context.Context) (store.Snapshot, error) {
	snap, err := s.db.Snapshot(ctx)
	if err != nil {
		return store.Snapshot{}, err
	}
	s.mu.Lock()
	s.full = snap
	s.mu.Unlock()
	return snap.ForHost(s.hostID), nil
}

// SnapshotSince reads what changed since the whole snapshot behind prev,
// which is the host's part of it.
func (s *hostSource) SnapshotSince(ctx context.Context, prev store.Snapshot) (store.Snapshot, error) {
	s.mu.Lock()
	full := s.full
	s.mu.Unlock()
	if full.Rules == nil || full.Generation != prev.Generation {
		return s.Snapshot(ctx)
	}
	snap, err := s.db.SnapshotSince(ctx, full)
	if err != nil {
		return store.Snapshot{}, err
	}
	s.mu.Lock()
	s.full = snap
	s.mu.Unlock()
	return snap.ForHost(s.hostID), nil
}

func (s *hostSource) Generation(ctx context.Context) (int64, error) { return s.db.Generation(ctx) }

func (s *hostSource) Watch() (<-chan struct{}, func()) { return s.db.Watch() }
