package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/packetlog"
	"github.com/rampart-fw/rampart/store"
)

// TestLogQueueBounded: entries wait for a console within maxQueuedEntries;
// what does not fit, and what is discarded, is counted; entries a console
// did not take go back to the front, in order, as far as there is room.
func TestLogQueueBounded(t *testing.T) {
	var q logQueue
	entries := make([]packetlog.Entry, maxQueuedEntries+5)
	for i := range entries {
		entries[i] = packetlog.Entry{Time: time.Unix(int64(i), 0), GroupID: "g", Direction: store.Inbound, Protocol: "TCP",
			Source: netip.MustParseAddr("192.0.2.1"), SourcePort: uint16(i), Destination: netip.MustParseAddr("192.0.2.2"), Verdict: store.Drop}
	}
	q.add(entries)
	if st := q.stats(); st.Dropped != 5 {
		t.Fatalf("dropped %d, want 5", st.Dropped)
	}
	first := q.take(3)
	if len(first) != 3 || first[0].SourcePort != 0 || first[2].SourcePort != 2 {
		t.Fatalf("take: %+v", first)
	}
	q.add(entries[:4]) // 3 fit again, 1 dropped
	q.putBack(first)   // no room left: the 3 are dropped
	if st := q.stats(); st.Dropped != 9 {
		t.Errorf("dropped %d, want 9", st.Dropped)
	}
	if got := q.take(1); got[0].SourcePort != 3 {
		t.Errorf("front after the put back: %+v", got)
	}
	q.putBack(first[:1])
	if got := q.take(2); got[0].SourcePort != 0 || got[1].SourcePort != 4 {
		t.Errorf("put back goes to the front: %+v", got)
	}
	q.discard()
	if st := q.stats(); st.Dropped != 9+uint64(maxQueuedEntries-2) || len(q.take(10)) != 0 {
		t.Errorf("after discard: %+v", st)
	}
}
