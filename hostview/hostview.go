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
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// View is what one host enforces at one store generation: the groups its
// servers are in, each with its rules and the host's servers in it.
type View struct {
	HostID     string  `json:"host_id"`
	Generation int64   `json:"generation"`
	Groups     []Group `json:"groups"` // ordered by ID
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
	// LogDefaultDrops logs what the default policies drop. A console from
	// before it sends none: false, as nothing was logged then.
	LogDefaultDrops bool `json:"log_default_drops,omitempty"`
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
	Log          bool            `json:"log,omitempty"` // logs the packets it decides
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
type Delta struct {
	HostID     string   `json:"host_id"`
	From       int64    `json:"from"`
	Generation int64    `json:"generation"`
	Groups     []Group  `json:"groups,omitempty"`
	Removed    []string `json:"removed,omitempty"`
}

// Empty reports whether d changes nothing but the generation.
func (d Delta) Empty() bool { return len(d.Groups) == 0 && len(d.Removed) == 0 }

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
	return next, d
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
	return next, nil
}

// Snapshot returns the view as the store's snapshot of the host: what
// store.Snapshot.ForHost returned on the console at that generation, but
// for Hosts, which a view does not carry (a host is not told of the
// others). The enforcer compiles it as it compiles the console's.
func (v View) Snapshot() store.Snapshot {
	snap := store.Snapshot{Generation: v.Generation, Rules: map[string][]store.Rule{}, Unreadable: map[string][]string{}}
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
					DestPortTo: r.DestPortTo, Position: r.Position, Editable: r.Editable, Unreadable: r.Unreadable, Log: r.Log}
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
				Position: r.Position, Editable: r.Editable, Unreadable: r.Unreadable, Log: r.Log}
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
