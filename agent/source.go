package agent

import (
	"context"
	"sync"

	"github.com/rampart-fw/rampart/hostview"
	"github.com/rampart-fw/rampart/store"
)

// viewSource is the reconciler's Source on an agent: the last complete
// view received (or kept from before a restart), as the store snapshot of
// the host that the console computed.
type viewSource struct {
	mu       sync.Mutex
	view     hostview.View
	snap     store.Snapshot
	has      chan struct{} // closed once a view is held
	hasOnce  sync.Once
	watchers map[chan struct{}]struct{}
}

func newViewSource() *viewSource {
	return &viewSource{has: make(chan struct{}), watchers: map[chan struct{}]struct{}{}}
}

// set makes v the desired state and wakes the reconciler.
func (s *viewSource) set(v hostview.View) {
	snap := v.Snapshot()
	s.mu.Lock()
	s.view, s.snap = v, snap
	for ch := range s.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
	s.hasOnce.Do(func() { close(s.has) })
}

// current returns the view held.
func (s *viewSource) current() hostview.View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view
}

func (s *viewSource) Snapshot(context.Context) (store.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap, nil
}

func (s *viewSource) Generation(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap.Generation, nil
}

func (s *viewSource) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.watchers[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.watchers, ch)
		s.mu.Unlock()
	}
}
