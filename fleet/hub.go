package fleet

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/rampart-fw/rampart/hostview"
	"github.com/rampart-fw/rampart/store"
)

// Pacing of the hub's reads, as the reconciler's (see enforcer): a read
// starts no sooner than readPace times the previous one's duration after
// it started, and never waits more than maxReadWait.
const (
	readPace    = 3
	maxReadWait = 500 * time.Millisecond
)

// pollInterval is how often the hub asks the store for its generation:
// changes made by another process (another console, `rampart host
// remove`) wake no watcher here.
const pollInterval = 250 * time.Millisecond

// subscriberBuffer is how many frames an agent may fall behind before its
// stream is closed; it then reconnects and is sent a full view.
const subscriberBuffer = 64

// hub follows the store and keeps, for every host, its view at the latest
// generation read: computed once per change whatever the number of agents,
// and sent to the connected agents as deltas.
type hub struct {
	db    *store.DB
	snaps *snapshots // shared with the console's reconciler
	log   *slog.Logger

	poke  chan struct{}
	ready chan struct{}

	// readMu serialises reads; mu guards the fields below and is never
	// held across a store read.
	readMu   sync.Mutex
	nextRead time.Time
	mu       sync.Mutex
	snap     store.Snapshot
	hosts    map[string]*hostEntry
	holders  map[string][]string // group ID → IDs of the hosts its servers are on
	closed   bool
}

type hostEntry struct {
	host store.Host
	view hostview.View
	// lastChange is the generation of the last change to the view seen by
	// this hub; at its first read, that read's generation, since what
	// changed before is unknown.
	lastChange int64
	full       []byte // the encoded full-view frame of view, made on demand
	subs       map[*subscriber]struct{}
}

// subscriber is one agent's view stream.
type subscriber struct {
	hostID, serial string
	gen            int64 // the generation the agent holds once the queued frames arrive
	frames         chan []byte
	done           chan struct{} // closed when the stream must end
	reason         string        // why, once done is closed
}

func newHub(snaps *snapshots, log *slog.Logger) *hub {
	return &hub{db: snaps.db, snaps: snaps, log: log, poke: make(chan struct{}, 1), ready: make(chan struct{}),
		hosts: map[string]*hostEntry{}, holders: map[string][]string{}}
}

// run follows the store until ctx ends, then closes every stream.
func (h *hub) run(ctx context.Context) {
	wake, cancel := h.db.Watch()
	defer cancel()
	for h.read(ctx) != nil && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	close(h.ready)
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			h.closeAll("the console is stopping")
			return
		case <-wake:
			h.read(ctx)
		case <-h.poke:
			h.read(ctx)
		case <-poll.C:
			gen, err := h.db.Generation(ctx)
			h.mu.Lock()
			behind := err == nil && gen != h.snap.Generation
			h.mu.Unlock()
			if behind {
				h.read(ctx)
			}
		}
	}
}

// wake asks the hub to read the store now.
func (h *hub) wake() {
	select {
	case h.poke <- struct{}{}:
	default:
	}
}

// read reads what changed and updates every host's view and stream.
func (h *hub) read(ctx context.Context) error {
	h.readMu.Lock()
	defer h.readMu.Unlock()
	if wait := min(time.Until(h.nextRead), maxReadWait); wait > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	start := time.Now()
	h.mu.Lock()
	prev := h.snap
	h.mu.Unlock()
	snap, err := h.snaps.latest(ctx)
	h.nextRead = start.Add(readPace * time.Since(start))
	if err != nil {
		if ctx.Err() == nil {
			h.log.Error("fleet: read the store", "err", err)
		}
		return err
	}
	if snap.Generation == prev.Generation && prev.Rules != nil {
		return nil
	}
	// The views are computed without h.mu, which the web layer's reads
	// take: only read changes them, and reads are serialised by readMu.
	views := make(map[string]viewChange, len(snap.Hosts))
	for _, host := range snap.Hosts {
		prev := hostview.View{HostID: host.ID}
		if e := h.hosts[host.ID]; e != nil {
			prev = e.view
		}
		next, d := prev.Advance(snap.ForHost(host.ID))
		views[host.ID] = viewChange{next, d}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.update(snap, views)
	return nil
}

// viewChange is a host's next view and the delta to it.
type viewChange struct {
	next  hostview.View
	delta hostview.Delta
}

// update moves every host to snap, whose views are computed; h.mu is held.
func (h *hub) update(snap store.Snapshot, views map[string]viewChange) {
	h.snap = snap
	live := make(map[string]bool, len(snap.Hosts))
	for _, host := range snap.Hosts {
		live[host.ID] = true
		e := h.hosts[host.ID]
		if e == nil {
			e = &hostEntry{view: hostview.View{HostID: host.ID}, lastChange: snap.Generation, subs: map[*subscriber]struct{}{}}
			h.hosts[host.ID] = e
		}
		e.host = host
		prevGen := e.view.Generation
		next, d := views[host.ID].next, views[host.ID].delta
		if !d.Empty() {
			e.lastChange = snap.Generation
		}
		e.view, e.full = next, nil
		var delta []byte
		for sub := range e.subs {
			if sub.serial != host.CertSerial {
				h.drop(e, sub, "the host's certificate was replaced")
				continue
			}
			if sub.gen == prevGen && sub.gen < next.Generation {
				if delta == nil {
					delta = encodeFrame(hostview.Frame{Type: hostview.FrameDelta, Delta: &d})
				}
				h.send(e, sub, delta)
				continue
			}
			h.catchUp(e, sub)
		}
	}
	for id, e := range h.hosts {
		if !live[id] {
			for sub := range e.subs {
				h.drop(e, sub, "the host was removed")
			}
			delete(h.hosts, id)
		}
	}
	holders := map[string][]string{}
	for _, s := range snap.Servers {
		hs := holders[s.SecurityGroup.ID]
		if s.HostID != "" && !slices.Contains(hs, s.HostID) {
			holders[s.SecurityGroup.ID] = append(hs, s.HostID)
		}
	}
	h.holders = holders
}

// catchUp queues for sub what takes it from the generation it holds to the
// host's view: nothing when it holds it (or is ahead, from another console
// on the same database: it waits for this hub to catch up), a delta that
// only moves the generation when the view did not change since, else the
// full view. h.mu is held.
func (h *hub) catchUp(e *hostEntry, sub *subscriber) {
	switch {
	case sub.gen >= e.view.Generation:
		if sub.gen > e.view.Generation {
			h.wake()
		}
	case sub.gen > 0 && sub.gen >= e.lastChange:
		d := hostview.Delta{HostID: e.host.ID, From: sub.gen, Generation: e.view.Generation}
		h.send(e, sub, encodeFrame(hostview.Frame{Type: hostview.FrameDelta, Delta: &d}))
	default:
		if e.full == nil {
			v := e.view
			e.full = encodeFrame(hostview.Frame{Type: hostview.FrameView, View: &v})
		}
		h.send(e, sub, e.full)
	}
}

// send queues a frame, or ends a stream that fell too far behind. h.mu is
// held.
func (h *hub) send(e *hostEntry, sub *subscriber, frame []byte) {
	select {
	case sub.frames <- frame:
		sub.gen = e.view.Generation
	default:
		h.drop(e, sub, "the agent fell behind")
	}
}

// drop ends a stream; h.mu is held.
func (h *hub) drop(e *hostEntry, sub *subscriber, reason string) {
	delete(e.subs, sub)
	sub.reason = reason
	close(sub.done)
}

func encodeFrame(f hostview.Frame) []byte {
	b, err := json.Marshal(f)
	if err != nil {
		panic("fleet: encode frame: " + err.Error()) // only plain data: cannot happen
	}
	return append(b, '\n')
}

// hubError is why subscribe refused a stream.
type hubError string

func (e hubError) Error() string { return string(e) }

const (
	// errUnknownHost: a host the hub does not know (yet, or any more).
	errUnknownHost = hubError("unknown host")
	errStopping    = hubError("the console is stopping")
)

// subscribe opens host hostID's stream for an agent holding the view of
// generation gen (0: none), authenticated with the certificate of serial.
// A stream already open for the host is closed: one agent per host. A
// host the hub has not read yet (just added) is waited for a little.
func (h *hub) subscribe(ctx context.Context, hostID, serial string, gen int64) (*subscriber, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, errStopping
		}
		e := h.hosts[hostID]
		if e != nil {
			defer h.mu.Unlock()
			for old := range e.subs {
				h.drop(e, old, "another stream opened for the host")
			}
			sub := &subscriber{hostID: hostID, serial: serial, gen: gen,
				frames: make(chan []byte, subscriberBuffer), done: make(chan struct{})}
			e.subs[sub] = struct{}{}
			h.catchUp(e, sub)
			return sub, nil
		}
		h.mu.Unlock()
		if time.Now().After(deadline) {
			return nil, errUnknownHost
		}
		h.wake()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// unsubscribe forgets a stream that ended.
func (h *hub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.hosts[sub.hostID]; e != nil {
		if _, ok := e.subs[sub]; ok {
			delete(e.subs, sub)
			close(sub.done)
		}
	}
}

// closeAll ends every stream and refuses new ones.
func (h *hub) closeAll(reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, e := range h.hosts {
		for sub := range e.subs {
			h.drop(e, sub, reason)
		}
	}
}

// viewGeneration returns the generation of the host's view.
func (h *hub) viewGeneration(id string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.hosts[id]; e != nil {
		return e.view.Generation
	}
	return 0
}

// hostChanges returns, by host ID, the generation of the last change to
// each host's view.
func (h *hub) hostChanges() map[string]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int64, len(h.hosts))
	for id, e := range h.hosts {
		out[id] = e.lastChange
	}
	return out
}

// groupHolders returns the hosts holding a group's servers, and the
// generation of the snapshot that says so.
func (h *hub) groupHolders(groupID string) ([]store.Host, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := h.holders[groupID]
	out := make([]store.Host, 0, len(ids))
	for _, id := range ids {
		if e := h.hosts[id]; e != nil {
			out = append(out, e.host)
		}
	}
	slices.SortFunc(out, func(a, b store.Host) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, h.snap.Generation
}

// snapshot returns the last snapshot read; it must not be modified.
func (h *hub) snapshot() store.Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.snap
}
