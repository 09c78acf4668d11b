// Package hostview is the protocol between the console and its agents: the
// view of one host (the groups, rules and servers it enforces at one store
// generation), the frames that carry a view and its changes down the view
// stream, the reports that come back, the enrolment and renewal messages,
// and the join token. The console (package fleet) and the agent (package
// agent) both build on it, and on nothing of each other.
//
// Every type has explicit JSON names: this is a wire format, which must not
// change when a Go field is renamed.
package hostview

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// View is what one host enforces at one store generation: the groups its
// servers are in, each with its rules and the host's servers in it.
type View struct {
	HostID     string  `json:"host_id"`
	Generation int64   `json:"generation"`
	Groups     []Group `json:"groups"` // ordered by ID
	// IPSets are the entries of the IP sets that the groups' rules name,
	// by set ID (store.Snapshot.IPSets).
	IPSets map[string][]netip.Prefix `json:"ip_sets"`
	// Members are the addresses of the servers, on every host, of the
	// groups that the rules name, by group ID (store.Snapshot.Members).
	Members map[string][]netip.Addr `json:"members"`
}

// Group is a security group as a host needs it: its settings, its rules,
// and the servers of this host that it holds. Members lists every server of
// the group, on any host, as the console shows them.
type Group struct {
	ID                    string       `json:"id"`
	OrganizationID        string       `json:"organization_id"`
	ProjectID             string       `json:"project_id"`
	Zone                  string       `json:"zone"`
	Name                  string       `json:"name"`
	Description           string       `json:"description"`
	Tags                  []string     `json:"tags"`
	Stateful              bool         `json:"stateful"`
	InboundDefaultPolicy  store.Policy `json:"inbound_default_policy"`
	OutboundDefaultPolicy store.Policy `json:"outbound_default_policy"`
	OrganizationDefault   bool         `json:"organization_default"`
	SMTPEnabled           bool         `json:"smtp_enabled"`
	Members               []ServerRef  `json:"members"`
	CreatedAt             time.Time    `json:"created_at"`
	ModifiedAt            time.Time    `json:"modified_at"`
	Generation            int64        `json:"generation"`
	Unreadable            string       `json:"unreadable,omitempty"`
	Rules                 []Rule       `json:"rules"`   // editable rules, in position order
	Servers               []Server     `json:"servers"` // this host's, ordered by ID
	UnreadableRows        []string     `json:"unreadable_rows"`
	LogDefaultDrops       bool         `json:"log_default_drops,omitempty"`
}

// ServerRef names a server or a group.
type ServerRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Rule is one rule of a group.
type Rule struct {
	ID           string          `json:"id"`
	Direction    store.Direction `json:"direction"`
	Protocol     store.Protocol  `json:"protocol"`
	Action       store.Policy    `json:"action"`
	IPRange      netip.Prefix    `json:"ip_range"`
	DestIPRange  netip.Prefix    `json:"dest_ip_range"` // "" when unset
	DestPortFrom uint16          `json:"dest_port_from"`
	DestPortTo   uint16          `json:"dest_port_to"`
	Position     int             `json:"position"`
	Editable     bool            `json:"editable"`
	Unreadable   string          `json:"unreadable,omitempty"`
	Description  string          `json:"description,omitempty"`
	Log          bool            `json:"log,omitempty"`
	// IPSetID or RemoteGroupID replace IPRange (zero then) as the remote
	// side: the entries of View.IPSets, the addresses of View.Members.
	IPSetID       string `json:"ip_set_id,omitempty"`
	RemoteGroupID string `json:"remote_security_group_id,omitempty"`
}

// Server is a machine behind the host (or the host itself, Local).
type Server struct {
	ID             string           `json:"id"`
	OrganizationID string           `json:"organization_id"`
	ProjectID      string           `json:"project_id"`
	Zone           string           `json:"zone"`
	Name           string           `json:"name"`
	Type           store.ServerType `json:"type"`
	Interface      string           `json:"interface"`
	Addresses      []netip.Addr     `json:"addresses"`
	Local          bool             `json:"local"`
	Tags           []string         `json:"tags"`
	SecurityGroup  ServerRef        `json:"security_group"`
	CreatedAt      time.Time        `json:"created_at"`
	ModifiedAt     time.Time        `json:"modified_at"`
	HostID         string           `json:"host_id"`
	Host           string           `json:"host"`
	PinnedHost     string           `json:"pinned_host"`
	Unreadable     string           `json:"unreadable,omitempty"`
}

// Delta turns the view of generation From into the view of Generation:
// Groups are the groups that changed or joined (whole: settings, rules and
// the host's servers in them), Removed the IDs of those that left. A delta
// with neither only moves the generation.
//
// IPSets and Members change the view's sets and members (see ListDelta):
// a set of 100,000 entries of which one changed travels as that one
// entry, and unchanged ones not at all. RemovedIPSets and RemovedMembers
// are those the rules no longer name.
type Delta struct {
	HostID         string                    `json:"host_id"`
	From           int64                     `json:"from"`
	Generation     int64                     `json:"generation"`
	Groups         []Group                   `json:"groups,omitempty"`
	Removed        []string                  `json:"removed,omitempty"`
	IPSets         []ListDelta[netip.Prefix] `json:"ip_sets,omitempty"`
	RemovedIPSets  []string                  `json:"removed_ip_sets,omitempty"`
	Members        []ListDelta[netip.Addr]   `json:"members,omitempty"`
	RemovedMembers []string                  `json:"removed_members,omitempty"`
}

// ListDelta turns the sorted list of an IP set's entries or of a group's
// addresses into its next version: Entries replace it when Replace is
// set (a list the view did not hold, or one that changed more than it
// stayed); otherwise Remove's elements leave it and Add's join it. Len is
// the length of the result, a check.
type ListDelta[T netip.Prefix | netip.Addr] struct {
	ID      string `json:"id"`
	Replace bool   `json:"replace,omitempty"`
	Entries []T    `json:"entries,omitempty"`
	Add     []T    `json:"add,omitempty"`
	Remove  []T    `json:"remove,omitempty"`
	Len     int    `json:"len"`
}

// Empty reports whether d changes nothing but the generation.
func (d Delta) Empty() bool {
	return len(d.Groups)+len(d.Removed)+len(d.IPSets)+len(d.RemovedIPSets)+len(d.Members)+len(d.RemovedMembers) == 0
}

// Advance returns the view of v's host at snap, which must be
// store.Snapshot.ForHost of that host, and the delta from v to it. Groups
// whose generation did not move are reused from v without being converted
// again: the store moves a group's generation with every change to it, to
// its rules, or to which servers it holds (which is what SnapshotSince
// relies on too).
func (v View) Advance(snap store.Snapshot) (View, Delta) {
	next := View{HostID: v.HostID, Generation: snap.Generation, Groups: make([]Group, 0, len(snap.Groups))}
	d := Delta{HostID: v.HostID, From: v.Generation, Generation: snap.Generation}
	old := make(map[string]*Group, len(v.Groups))
	for i := range v.Groups {
		old[v.Groups[i].ID] = &v.Groups[i]
	}
	servers := map[string][]Server{}
	byID := func(a, b store.Group) int { return strings.Compare(a.ID, b.ID) }
	groups := snap.Groups
	if !slices.IsSortedFunc(groups, byID) {
		groups = slices.Clone(groups)
		slices.SortFunc(groups, byID)
	}
	var changed []store.Group
	for _, g := range groups {
		if o := old[g.ID]; o != nil && o.Generation == g.Generation {
			continue
		}
		changed = append(changed, g)
	}
	if len(changed) > 0 {
		want := make(map[string]bool, len(changed))
		for _, g := range changed {
			want[g.ID] = true
		}
		for _, s := range snap.Servers {
			if want[s.SecurityGroup.ID] {
				servers[s.SecurityGroup.ID] = append(servers[s.SecurityGroup.ID], serverOf(s))
			}
		}
	}
	seen := make(map[string]bool, len(groups))
	for _, g := range groups {
		seen[g.ID] = true
		if o := old[g.ID]; o != nil && o.Generation == g.Generation {
			next.Groups = append(next.Groups, *o)
			continue
		}
		ng := groupOf(g, snap.Rules[g.ID], servers[g.ID], snap.Unreadable[g.ID])
		next.Groups = append(next.Groups, ng)
		d.Groups = append(d.Groups, ng)
	}
	for _, g := range v.Groups {
		if !seen[g.ID] {
			d.Removed = append(d.Removed, g.ID)
		}
	}
	next.IPSets, d.IPSets, d.RemovedIPSets = advanceLists(v.IPSets, snap.IPSets, enforcer.ComparePrefixes)
	next.Members, d.Members, d.RemovedMembers = advanceLists(v.Members, snap.Members, netip.Addr.Compare)
	return next, d
}

// advanceLists returns the lists of the next view (next's, which share
// the snapshot's slices) and the deltas from old: nothing for a list that
// is the same slice or holds the same elements, the difference by a
// sorted merge for one that changed, the whole list for a new one or one
// that changed more than it stayed (or that is not sorted).
func advanceLists[T netip.Prefix | netip.Addr](old, next map[string][]T, cmp func(a, b T) int) (map[string][]T, []ListDelta[T], []string) {
	out := make(map[string][]T, len(next))
	var deltas []ListDelta[T]
	for _, id := range slices.Sorted(maps.Keys(next)) {
		list := next[id]
		if list == nil {
			list = []T{}
		}
		out[id] = list
		prev, ok := old[id]
		if ok && (len(prev) == len(list) && (len(list) == 0 || &prev[0] == &list[0]) || slices.Equal(prev, list)) {
			if len(list) > 0 && &prev[0] != &list[0] {
				out[id] = prev // the same: keep the slice the receiver holds
			}
			continue
		}
		d := ListDelta[T]{ID: id, Len: len(list)}
		if ok && slices.IsSortedFunc(prev, cmp) && slices.IsSortedFunc(list, cmp) {
			d.Remove, d.Add = diffSorted(prev, list, cmp)
		}
		if !ok || len(d.Remove)+len(d.Add) >= len(list) || !slices.IsSortedFunc(list, cmp) {
			d = ListDelta[T]{ID: id, Replace: true, Entries: list, Len: len(list)}
		}
		deltas = append(deltas, d)
	}
	var removed []string
	for _, id := range slices.Sorted(maps.Keys(old)) {
		if _, ok := next[id]; !ok {
			removed = append(removed, id)
		}
	}
	return out, deltas, removed
}

// diffSorted returns the elements of sorted list a missing from sorted
// list b (del) and those of b missing from a (add).
func diffSorted[T any](a, b []T, cmp func(x, y T) int) (del, add []T) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && cmp(a[i], b[j]) < 0:
			del = append(del, a[i])
			i++
		case i == len(a) || cmp(b[j], a[i]) < 0:
			add = append(add, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return del, add
}

// applyLists applies list deltas to the lists of a view: untouched lists
// keep their slices.
func applyLists[T netip.Prefix | netip.Addr](old map[string][]T, deltas []ListDelta[T], removed []string, cmp func(a, b T) int, what string) (map[string][]T, error) {
	out := make(map[string][]T, len(old)+len(deltas))
	for id, list := range old {
		out[id] = list
	}
	for _, id := range removed {
		delete(out, id)
	}
	for _, d := range deltas {
		prev, ok := out[d.ID]
		var list []T
		switch {
		case d.Replace:
			list = d.Entries
			if list == nil {
				list = []T{}
			}
		case !ok:
			return nil, fmt.Errorf("%s %s: a change to a list the view does not hold", what, d.ID)
		default:
			var err error
			if list, err = mergeSorted(prev, d.Remove, d.Add, cmp); err != nil {
				return nil, fmt.Errorf("%s %s: %w", what, d.ID, err)
			}
		}
		if len(list) != d.Len {
			return nil, fmt.Errorf("%s %s: %d entries, want %d", what, d.ID, len(list), d.Len)
		}
		out[d.ID] = list
	}
	return out, nil
}

// mergeSorted returns sorted list a without the elements of remove and
// with those of add, all three sorted; every element of remove must be in
// a, and none of add.
func mergeSorted[T any](a, remove, add []T, cmp func(x, y T) int) ([]T, error) {
	out := make([]T, 0, len(a)-len(remove)+len(add))
	i, r, k := 0, 0, 0
	for i < len(a) || k < len(add) {
		switch {
		case k == len(add) || i < len(a) && cmp(a[i], add[k]) < 0:
			if r < len(remove) && cmp(a[i], remove[r]) == 0 {
				r++
			} else {
				out = append(out, a[i])
			}
			i++
		case i == len(a) || cmp(add[k], a[i]) < 0:
			out = append(out, add[k])
			k++
		default:
			return nil, errors.New("an entry added that the list holds")
		}
	}
	if r != len(remove) {
		return nil, errors.New("an entry removed that the list does not hold")
	}
	return out, nil
}

// FromSnapshot returns the view of host hostID at snap, which must be
// store.Snapshot.ForHost(hostID).
func FromSnapshot(hostID string, snap store.Snapshot) View {
	v, _ := View{HostID: hostID}.Advance(snap)
	return v
}

// Apply returns the view that d turns v into. It refuses a delta that does
// not start at v's generation: the agent then asks for a full view.
func (v View) Apply(d Delta) (View, error) {
	if d.HostID != v.HostID {
		return View{}, fmt.Errorf("delta for host %s applied to host %s", d.HostID, v.HostID)
	}
	if d.From != v.Generation {
		return View{}, fmt.Errorf("delta from generation %d applied to generation %d", d.From, v.Generation)
	}
	if d.Generation < d.From {
		return View{}, fmt.Errorf("delta goes back from generation %d to %d", d.From, d.Generation)
	}
	drop := make(map[string]bool, len(d.Removed)+len(d.Groups))
	for _, id := range d.Removed {
		drop[id] = true
	}
	for _, g := range d.Groups {
		drop[g.ID] = true
	}
	next := View{HostID: v.HostID, Generation: d.Generation, Groups: make([]Group, 0, len(v.Groups)+len(d.Groups))}
	for _, g := range v.Groups {
		if !drop[g.ID] {
			next.Groups = append(next.Groups, g)
		}
	}
	next.Groups = append(next.Groups, d.Groups...)
	slices.SortFunc(next.Groups, func(a, b Group) int { return strings.Compare(a.ID, b.ID) })
	for i := 1; i < len(next.Groups); i++ {
		if next.Groups[i].ID == next.Groups[i-1].ID {
			return View{}, fmt.Errorf("delta to generation %d: group %s twice", d.Generation, next.Groups[i].ID)
		}
	}
	var err error
	if next.IPSets, err = applyLists(v.IPSets, d.IPSets, d.RemovedIPSets, enforcer.ComparePrefixes, "IP set"); err != nil {
		return View{}, fmt.Errorf("delta to generation %d: %w", d.Generation, err)
	}
	if next.Members, err = applyLists(v.Members, d.Members, d.RemovedMembers, netip.Addr.Compare, "members of group"); err != nil {
		return View{}, fmt.Errorf("delta to generation %d: %w", d.Generation, err)
	}
	return next, nil
}

// Snapshot returns the view as the store's snapshot of the host: what
// store.Snapshot.ForHost returned on the console at that generation, but
// for Hosts, which a view does not carry (a host is not told of the
// others). The enforcer compiles it as it compiles the console's.
func (v View) Snapshot() store.Snapshot {
	snap := store.Snapshot{Generation: v.Generation, Rules: map[string][]store.Rule{}, Unreadable: map[string][]string{},
		IPSets: make(map[string][]netip.Prefix, len(v.IPSets)), Members: make(map[string][]netip.Addr, len(v.Members))}
	for id, list := range v.IPSets {
		if list == nil {
			list = []netip.Prefix{}
		}
		snap.IPSets[id] = list
	}
	for id, list := range v.Members {
		if list == nil {
			list = []netip.Addr{}
		}
		snap.Members[id] = list
	}
	for _, g := range v.Groups {
		sg := store.Group{
			ID: g.ID, OrganizationID: g.OrganizationID, ProjectID: g.ProjectID, Zone: g.Zone, Name: g.Name,
			Description: g.Description, Tags: g.Tags, Stateful: g.Stateful,
			InboundDefaultPolicy: g.InboundDefaultPolicy, OutboundDefaultPolicy: g.OutboundDefaultPolicy,
			OrganizationDefault: g.OrganizationDefault, SMTPEnabled: g.SMTPEnabled,
			CreatedAt: g.CreatedAt, ModifiedAt: g.ModifiedAt, Generation: g.Generation, Unreadable: g.Unreadable,
			LogDefaultDrops: g.LogDefaultDrops,
		}
		if g.Members != nil {
			sg.Servers = make([]store.ServerRef, len(g.Members))
			for i, m := range g.Members {
				sg.Servers[i] = store.ServerRef{ID: m.ID, Name: m.Name}
			}
		}
		snap.Groups = append(snap.Groups, sg)
		if g.Rules != nil {
			rules := make([]store.Rule, len(g.Rules))
			for i, r := range g.Rules {
				rules[i] = store.Rule{ID: r.ID, GroupID: g.ID, Direction: r.Direction, Protocol: r.Protocol,
					Action: r.Action, IPRange: r.IPRange, DestIPRange: r.DestIPRange, DestPortFrom: r.DestPortFrom,
					DestPortTo: r.DestPortTo, Position: r.Position, Editable: r.Editable, Unreadable: r.Unreadable,
					Description: r.Description, Log: r.Log, IPSetID: r.IPSetID, RemoteGroupID: r.RemoteGroupID}
			}
			snap.Rules[g.ID] = rules
		}
		if g.UnreadableRows != nil {
			snap.Unreadable[g.ID] = g.UnreadableRows
		}
		for _, s := range g.Servers {
			snap.Servers = append(snap.Servers, store.Server{
				ID: s.ID, OrganizationID: s.OrganizationID, ProjectID: s.ProjectID, Zone: s.Zone, Name: s.Name,
				Type: s.Type, Interface: s.Interface, Addresses: s.Addresses, Local: s.Local, Tags: s.Tags,
				SecurityGroup: store.ServerRef{ID: s.SecurityGroup.ID, Name: s.SecurityGroup.Name},
				CreatedAt:     s.CreatedAt, ModifiedAt: s.ModifiedAt, HostID: s.HostID, Host: s.Host,
				PinnedHost: s.PinnedHost, Unreadable: s.Unreadable,
			})
		}
	}
	slices.SortFunc(snap.Servers, func(a, b store.Server) int { return strings.Compare(a.ID, b.ID) })
	return snap
}

func groupOf(g store.Group, rules []store.Rule, servers []Server, unreadable []string) Group {
	out := Group{
		ID: g.ID, OrganizationID: g.OrganizationID, ProjectID: g.ProjectID, Zone: g.Zone, Name: g.Name,
		Description: g.Description, Tags: g.Tags, Stateful: g.Stateful,
		InboundDefaultPolicy: g.InboundDefaultPolicy, OutboundDefaultPolicy: g.OutboundDefaultPolicy,
		OrganizationDefault: g.OrganizationDefault, SMTPEnabled: g.SMTPEnabled,
		CreatedAt: g.CreatedAt, ModifiedAt: g.ModifiedAt, Generation: g.Generation, Unreadable: g.Unreadable,
		Servers: servers, UnreadableRows: unreadable, LogDefaultDrops: g.LogDefaultDrops,
	}
	if g.Servers != nil {
		out.Members = make([]ServerRef, len(g.Servers))
		for i, m := range g.Servers {
			out.Members[i] = ServerRef{ID: m.ID, Name: m.Name}
		}
	}
	if rules != nil {
		out.Rules = make([]Rule, len(rules))
		for i, r := range rules {
			out.Rules[i] = Rule{ID: r.ID, Direction: r.Direction, Protocol: r.Protocol, Action: r.Action,
				IPRange: r.IPRange, DestIPRange: r.DestIPRange, DestPortFrom: r.DestPortFrom, DestPortTo: r.DestPortTo,
				Position: r.Position, Editable: r.Editable, Unreadable: r.Unreadable,
				Description: r.Description, Log: r.Log, IPSetID: r.IPSetID, RemoteGroupID: r.RemoteGroupID}
		}
	}
	return out
}

func serverOf(s store.Server) Server {
	return Server{
		ID: s.ID, OrganizationID: s.OrganizationID, ProjectID: s.ProjectID, Zone: s.Zone, Name: s.Name,
		Type: s.Type, Interface: s.Interface, Addresses: s.Addresses, Local: s.Local, Tags: s.Tags,
		SecurityGroup: ServerRef{ID: s.SecurityGroup.ID, Name: s.SecurityGroup.Name},
		CreatedAt:     s.CreatedAt, ModifiedAt: s.ModifiedAt, HostID: s.HostID, Host: s.Host,
		PinnedHost: s.PinnedHost, Unreadable: s.Unreadable,
	}
}
