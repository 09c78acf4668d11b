package hostview

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// forHost is what an agent must rebuild: the console's view of the host,
// without the other hosts (a view does not carry them).
func forHost(snap store.Snapshot, hostID string) store.Snapshot {
	v := snap.ForHost(hostID)
	v.Hosts = nil
	return v
}

// roundTrip sends a frame through JSON, as the view stream does.
func roundTrip(t *testing.T, f Frame) Frame {
	t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var out Frame
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAgentRebuildsForHost is the protocol's property: an agent that
// received a full view and then every delta (through JSON), or a full
// view again after a reconnect, holds exactly snap.ForHost(host) of the
// console's snapshot at that generation, for every host, after every one
// of a few hundred random changes to a real store (groups, rules,
// servers moving between groups and hosts, the default host moving).
func TestAgentRebuildsForHost(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "r.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	org, err := db.EnsureOrganization(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	const zone = "fr-par-1"
	hostNames := []string{"console", "h1", "h2", "h3"}
	if _, err := db.EnsureHost(ctx, "console"); err != nil {
		t.Fatal(err)
	}
	for _, n := range hostNames[1:] {
		if _, _, err := db.CreateHost(ctx, n, 0); err != nil {
			t.Fatal(err)
		}
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 13))

	snap, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hostIDs := map[string]string{}
	for _, h := range snap.Hosts {
		hostIDs[h.Name] = h.ID
	}
	console := map[string]View{} // what the hub last sent each host
	agent := map[string]View{}   // what each agent rebuilt
	for _, id := range hostIDs {
		v := FromSnapshot(id, snap.ForHost(id))
		console[id] = v
		agent[id] = *roundTrip(t, Frame{Type: FrameView, View: &v}).View
	}

	var groups, servers, rules, ipsets []string
	made := 0 // servers ever made: names and interfaces stay unique
	ruleGroup := map[string]string{}
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	policy := func() store.Policy { return []store.Policy{store.Accept, store.Drop}[rng.IntN(2)] }
	ptr := func(n int) *int { return &n }
	ops := []func() error{
		func() error { // a group
			g, err := db.CreateGroup(ctx, org.ID, zone, store.GroupInput{Name: fmt.Sprint("g", len(groups)),
				Stateful: rng.IntN(2) == 0, InboundDefaultPolicy: policy(), OutboundDefaultPolicy: policy(),
				SMTPEnabled: rng.IntN(2) == 0, Tags: []string{"t"}[:rng.IntN(2)]})
			if err == nil {
				groups = append(groups, g.ID)
			}
			return err
		},
		func() error { // a group's settings
			if len(groups) == 0 {
				return nil
			}
			p, s, l := policy(), rng.IntN(2) == 0, rng.IntN(2) == 0
			_, err := db.UpdateGroup(ctx, org.ID, zone, pick(groups), store.GroupPatch{InboundDefaultPolicy: &p, SMTPEnabled: &s, LogDefaultDrops: &l})
			return err
		},
		func() error { // a rule
			if len(groups) == 0 {
				return nil
			}
			gid := pick(groups)
			logged := rng.IntN(3) == 0
			in := store.RuleInput{Direction: store.Inbound, Protocol: store.TCP, Action: policy(),
				IPRange: fmt.Sprintf("10.%d.0.0/16", rng.IntN(200)), DestPortFrom: ptr(1 + rng.IntN(1000)), Log: &logged}
			if rng.IntN(2) == 0 {
				in.Direction, in.Protocol, in.IPRange, in.DestPortFrom = store.Outbound, store.ANY, "::/0", nil
			}
			r, err := db.CreateRule(ctx, org.ID, zone, gid, in)
			if err == nil {
				rules = append(rules, r.ID)
				ruleGroup[r.ID] = gid
			}
			return err
		},
		func() error { // a rule removed
			if len(rules) == 0 {
				return nil
			}
			i := rng.IntN(len(rules))
			id := rules[i]
			rules = append(rules[:i], rules[i+1:]...)
			err := db.DeleteRule(ctx, org.ID, zone, ruleGroup[id], id)
			if store.ErrorCode(err) == store.CodeNotFound {
				return nil // its group went
			}
			return err
		},
		func() error { // a server, on some host, in some group
			made++
			in := store.ServerInput{Name: fmt.Sprint("s", made), Interface: fmt.Sprintf("vm%d", made),
				Addresses: []string{fmt.Sprintf("10.1.%d.%d", made/200, 1+made%200)}}
			if rng.IntN(3) > 0 {
				in.Host = pick(hostNames)
			}
			if len(groups) > 0 {
				in.SecurityGroupID = pick(groups)
			}
			s, err := db.CreateServer(ctx, org.ID, zone, in)
			if err == nil {
				servers = append(servers, s.ID)
			}
			return err
		},
		func() error { // a server moves to another host
			if len(servers) == 0 {
				return nil
			}
			h := pick(append(hostNames, ""))
			_, err := db.UpdateServer(ctx, org.ID, zone, pick(servers), store.ServerPatch{Host: &h})
			return err
		},
		func() error { // a server moves to another group
			if len(servers) == 0 || len(groups) == 0 {
				return nil
			}
			g := pick(groups)
			_, err := db.UpdateServer(ctx, org.ID, zone, pick(servers), store.ServerPatch{SecurityGroupID: &g})
			return err
		},
		func() error { // a server removed
			if len(servers) == 0 {
				return nil
			}
			i := rng.IntN(len(servers))
			id := servers[i]
			servers = append(servers[:i], servers[i+1:]...)
			_, err := db.DeleteServer(ctx, org.ID, zone, id)
			return err
		},
		func() error { // a group removed (refused while it holds servers)
			if len(groups) == 0 {
				return nil
			}
			i := rng.IntN(len(groups))
			_, err := db.DeleteGroup(ctx, org.ID, zone, groups[i])
			if err == nil {
				groups = append(groups[:i], groups[i+1:]...)
			}
			if store.ErrorCode(err) == store.CodeConflict || store.ErrorCode(err) == store.CodeInvalid {
				return nil
			}
			return err
		},
		func() error { // the default host moves
			_, err := db.SetDefaultHost(ctx, pick(hostNames))
			return err
		},
		func() error { // an IP set, of a few to a few thousand entries
			var entries []string
			for i := range []int{3, 40, 2000}[rng.IntN(3)] {
				entries = append(entries, fmt.Sprintf("172.%d.%d.%d", 16+i/65536%16, i/256%256, i%256))
			}
			entries = append(entries, fmt.Sprintf("2001:db8:%x::/48", rng.IntN(1000)))
			set, err := db.CreateIPSet(ctx, org.ID, zone, store.IPSetInput{Name: fmt.Sprint("set", len(ipsets)), Entries: entries})
			if err == nil {
				ipsets = append(ipsets, set.ID)
			}
			return err
		},
		func() error { // an IP set's entries edited: one added or removed, or all replaced
			if len(ipsets) == 0 {
				return nil
			}
			p := store.IPSetPatch{}
			one := []string{fmt.Sprintf("192.0.2.%d", rng.IntN(256))}
			switch rng.IntN(4) {
			case 0:
				p.Remove = one
			case 1:
				all := []string{fmt.Sprintf("198.51.100.0/%d", 24+rng.IntN(9))}
				p.Entries = &all
			default:
				p.Add = one
			}
			_, err := db.UpdateIPSet(ctx, org.ID, zone, pick(ipsets), p)
			if store.ErrorCode(err) == store.CodeInvalid {
				return nil // e.g. removing what it does not hold
			}
			return err
		},
		func() error { // a rule on an IP set or on a group
			if len(groups) == 0 {
				return nil
			}
			gid := pick(groups)
			in := store.RuleInput{Direction: store.Inbound, Protocol: store.TCP, Action: policy(), DestPortFrom: ptr(443)}
			switch {
			case rng.IntN(2) == 0 && len(ipsets) > 0:
				id := pick(ipsets)
				in.IPSetID = &id
			default:
				id := pick(groups)
				in.RemoteGroupID = &id
			}
			r, err := db.CreateRule(ctx, org.ID, zone, gid, in)
			if err == nil {
				rules = append(rules, r.ID)
				ruleGroup[r.ID] = gid
			}
			return err
		},
		func() error { // a server's addresses change
			if len(servers) == 0 {
				return nil
			}
			addrs := []string{fmt.Sprintf("10.2.%d.%d", rng.IntN(256), 1+rng.IntN(250))}
			if rng.IntN(2) == 0 {
				addrs = append(addrs, fmt.Sprintf("fd00::%x", rng.IntN(65536)))
			}
			_, err := db.UpdateServer(ctx, org.ID, zone, pick(servers), store.ServerPatch{Addresses: &addrs})
			return err
		},
	}
	weights := []int{3, 2, 6, 2, 5, 3, 3, 1, 1, 1, 1, 4, 3, 2}
	var total int
	for _, w := range weights {
		total += w
	}
	nonEmpty, setsWhole, setsEdited, membersEdited := 0, 0, 0, 0
	for step := range 300 {
		// Sometimes several changes between two reads, as the hub's
		// pacing coalesces them.
		for range 1 + rng.IntN(3) {
			n := rng.IntN(total)
			i := 0
			for n >= weights[i] {
				n -= weights[i]
				i++
			}
			if err := ops[i](); err != nil {
				t.Fatalf("step %d op %d: %v", step, i, err)
			}
		}
		next, err := db.SnapshotSince(ctx, snap)
		if err != nil {
			t.Fatal(err)
		}
		snap = next
		for name, id := range hostIDs {
			v, d := console[id].Advance(snap.ForHost(id))
			console[id] = v
			if !d.Empty() {
				nonEmpty++
			}
			for _, ld := range d.IPSets {
				if ld.Replace {
					setsWhole++
				} else {
					setsEdited++
					if len(ld.Add)+len(ld.Remove) > 2 {
						t.Errorf("step %d: an edit of one entry sent %d", step, len(ld.Add)+len(ld.Remove))
					}
				}
			}
			for _, ld := range d.Members {
				if !ld.Replace {
					membersEdited++
				}
			}
			if rng.IntN(20) == 0 { // a reconnect: a full view
				agent[id] = *roundTrip(t, Frame{Type: FrameView, View: &v}).View
			} else {
				got, err := agent[id].Apply(*roundTrip(t, Frame{Type: FrameDelta, Delta: &d}).Delta)
				if err != nil {
					t.Fatalf("step %d host %s: %v", step, name, err)
				}
				agent[id] = got
			}
			if got, want := agent[id].Snapshot(), forHost(snap, id); !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d host %s: the agent holds\n%+v\nwant\n%+v", step, name, got, want)
			}
		}
	}
	if nonEmpty < 100 {
		t.Errorf("only %d deltas changed anything: the test did not exercise the protocol", nonEmpty)
	}
	t.Logf("IP sets sent whole %d times, as edits %d times; members as edits %d times", setsWhole, setsEdited, membersEdited)
	if setsWhole == 0 || setsEdited == 0 || membersEdited == 0 {
		t.Errorf("sets and members did not travel both ways (whole and edits)")
	}
	// The incremental reads matched a whole read all along.
	full, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, id := range hostIDs {
		if !reflect.DeepEqual(agent[id].Snapshot(), forHost(full, id)) {
			t.Errorf("host %s: the agent's view differs from a whole snapshot's", name)
		}
	}
}

// TestDeltaRefusals: a delta applies only to the view it starts from.
func TestDeltaRefusals(t *testing.T) {
	v := View{HostID: "h", Generation: 5, Groups: []Group{{ID: "a", Generation: 3}},
		IPSets: map[string][]netip.Prefix{"s": {netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")}}}
	edit := func(d ListDelta[netip.Prefix]) Delta {
		return Delta{HostID: "h", From: 5, Generation: 6, IPSets: []ListDelta[netip.Prefix]{d}}
	}
	p := netip.MustParsePrefix
	tests := []struct {
		name string
		d    Delta
		ok   bool
	}{
		{"next generation", Delta{HostID: "h", From: 5, Generation: 7}, true},
		{"another host", Delta{HostID: "x", From: 5, Generation: 7}, false},
		{"from elsewhere", Delta{HostID: "h", From: 4, Generation: 7}, false},
		{"backwards", Delta{HostID: "h", From: 5, Generation: 4}, false},
		{"a group twice", Delta{HostID: "h", From: 5, Generation: 6, Groups: []Group{{ID: "b"}, {ID: "b"}}}, false},
		{"a group replaced", Delta{HostID: "h", From: 5, Generation: 6, Groups: []Group{{ID: "a", Generation: 6}}}, true},
		{"a set edited", edit(ListDelta[netip.Prefix]{ID: "s", Add: []netip.Prefix{p("192.0.2.2/32")}, Remove: []netip.Prefix{p("10.0.0.0/8")}, Len: 2}), true},
		{"a set edited, wrong length", edit(ListDelta[netip.Prefix]{ID: "s", Add: []netip.Prefix{p("192.0.2.2/32")}, Len: 2}), false},
		{"a set edited that the view does not hold", edit(ListDelta[netip.Prefix]{ID: "x", Add: []netip.Prefix{p("192.0.2.2/32")}, Len: 1}), false},
		{"an entry removed that the set does not hold", edit(ListDelta[netip.Prefix]{ID: "s", Remove: []netip.Prefix{p("192.0.2.9/32")}, Len: 1}), false},
		{"an entry added that the set holds", edit(ListDelta[netip.Prefix]{ID: "s", Add: []netip.Prefix{p("10.0.0.0/8")}, Len: 3}), false},
		{"a set replaced", edit(ListDelta[netip.Prefix]{ID: "x", Replace: true, Entries: []netip.Prefix{p("192.0.2.2/32")}, Len: 1}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Apply(tt.d)
			if (err == nil) != tt.ok {
				t.Fatalf("Apply = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// TestUnreadableRowsTravel: rows the store could not read reach the agent,
// which then fails the group closed as the console would.
func TestUnreadableRowsTravel(t *testing.T) {
	snap := store.Snapshot{Generation: 9,
		Groups: []store.Group{{ID: "g", Generation: 9, Unreadable: "inbound policy \"maybe\""}},
		Rules: map[string][]store.Rule{"g": {{ID: "r", GroupID: "g", Direction: store.Inbound, Protocol: store.TCP,
			Action: store.Accept, IPRange: netip.MustParsePrefix("10.0.0.0/8"), Position: 1, Editable: true, Unreadable: "port 0"}}},
		Servers:    []store.Server{{ID: "s", HostID: "h", SecurityGroup: store.ServerRef{ID: "g"}, Unreadable: "addresses"}},
		Unreadable: map[string][]string{"g": {"group g: x", "rule r: port 0", "server s: addresses"}},
		// As ForHost gives them: maps, empty.
		IPSets: map[string][]netip.Prefix{}, Members: map[string][]netip.Addr{},
	}
	v := FromSnapshot("h", snap)
	got := roundTrip(t, Frame{Type: FrameView, View: &v}).View.Snapshot()
	if !reflect.DeepEqual(got, snap) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, snap)
	}
}

func TestJoinToken(t *testing.T) {
	pin := Pin([]byte("a CA certificate"))
	tests := []struct {
		in string
		ok bool
	}{
		{"s3cr3t." + pin, true},
		{" s3cr3t." + pin + "\n", true},
		{"s3cr3t", false},
		{"." + pin, false},
		{"s3cr3t.", false},
		{"s3cr3t.abc", false},
		{"s3cr3t." + pin + "x", false},
	}
	for _, tt := range tests {
		tok, err := ParseJoinToken(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseJoinToken(%q) = %v, want ok %v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && (tok.Secret != "s3cr3t" || tok.Pin != pin || tok.String() != "s3cr3t."+pin) {
			t.Errorf("ParseJoinToken(%q) = %+v", tt.in, tok)
		}
	}
}

// TestObservationsWire: Observations, and the view's logging fields, have
// the JSON names consoles and agents of other releases read; a view
// without the logging fields (an older console's) reads as logging
// nothing.
func TestObservationsWire(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	o := Observations{HostID: "h1", Entries: []LogEntry{{Time: at, GroupID: "g", Direction: store.Inbound, Protocol: "UDP",
		Source: netip.MustParseAddr("2001:db8::7"), SourcePort: 5353, Destination: netip.MustParseAddr("2001:db8::1"), DestinationPort: 53,
		Verdict: store.Accept, DecidedBy: store.Decider{Kind: "rule", RuleID: "r1"}}},
		Counters: map[string]map[string]Counter{"g": {"r1": {Packets: 2, Bytes: 120}}}, Log: LogStats{Received: 9, BufferDrops: 1}}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"host_id":"h1","entries":[{"time":"2026-03-01T12:00:00Z","group_id":"g","direction":"inbound","protocol":"UDP",` +
		`"source":"2001:db8::7","source_port":5353,"destination":"2001:db8::1","destination_port":53,"verdict":"accept",` +
		`"decided_by":{"kind":"rule","rule_id":"r1"}}],"counters":{"g":{"r1":{"packets":2,"bytes":120}}},` +
		`"log":{"received":9,"buffer_drops":1,"dropped":0}}`
	if string(b) != want {
		t.Errorf("Observations\n got %s\nwant %s", b, want)
	}
	var v View
	if err := json.Unmarshal([]byte(`{"host_id":"h1","generation":3,"groups":[{"id":"g","generation":3,"rules":[{"id":"r1","log":true}]}]}`), &v); err != nil {
		t.Fatal(err)
	}
	snap := v.Snapshot()
	if snap.Groups[0].LogDefaultDrops || !snap.Rules["g"][0].Log {
		t.Errorf("logging fields read as %v %v", snap.Groups[0].LogDefaultDrops, snap.Rules["g"][0].Log)
	}
}
