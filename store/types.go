package store

import (
	"net/netip"
	"time"
)

// Policy is a default policy or a rule action: what happens to a packet.
type Policy string

// Policies and actions.
const (
	Accept Policy = "accept"
	Drop   Policy = "drop"
)

// Direction says which way a rule looks: traffic to the server or from it.
type Direction string

// Directions.
const (
	Inbound  Direction = "inbound"
	Outbound Direction = "outbound"
)

// Protocol is the protocol a rule matches.
type Protocol string

// Protocols. ICMP covers ICMPv6 for IPv6 ranges.
const (
	TCP  Protocol = "TCP"
	UDP  Protocol = "UDP"
	ICMP Protocol = "ICMP"
	ANY  Protocol = "ANY"
)

// HasPorts reports whether rules of protocol p may carry destination ports.
func (p Protocol) HasPorts() bool { return p == TCP || p == UDP }

// SyncState says whether the kernel holds a group as stored, with
// Scaleway's three values.
type SyncState string

// Sync states.
const (
	Syncing      SyncState = "syncing"       // a change is on its way to the kernel
	Available    SyncState = "available"     // the kernel holds the group's generation
	SyncingError SyncState = "syncing_error" // it could not be applied; the detail says why
)

// ServerType distinguishes virtual instances from bare-metal machines, which
// may only carry stateless groups.
type ServerType string

// Server types.
const (
	Instance  ServerType = "instance"
	BareMetal ServerType = "baremetal"
)

// SMTPPorts are the outbound TCP ports dropped while a group does not
// enable SMTP (Scaleway's enable_default_security).
var SMTPPorts = []uint16{25, 465, 587}

// Organization owns groups, servers, users and tokens. Its single project has
// the organization's ID, as at Scaleway.
type Organization struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// ProjectID returns the ID of the organization's default project.
func (o Organization) ProjectID() string { return o.ID }

// User signs in to the console.
type User struct {
	ID             string
	OrganizationID string
	Email          string
	// Operator users administer the whole install (hosts, organizations,
	// users, grants) besides their organization. The first user is one.
	Operator  bool
	CreatedAt time.Time
}

// Token is an API key. Only a hash of its secret is stored.
type Token struct {
	AccessKey      string
	OrganizationID string
	Description    string
	CreatedAt      time.Time
}

// Group is a security group.
type Group struct {
	ID                    string
	OrganizationID        string
	ProjectID             string
	Zone                  string
	Name                  string
	Description           string
	Tags                  []string
	Stateful              bool
	InboundDefaultPolicy  Policy
	OutboundDefaultPolicy Policy
	OrganizationDefault   bool
	SMTPEnabled           bool // false: outbound SMTP is blocked (six rules)
	Servers               []ServerRef
	CreatedAt             time.Time
	ModifiedAt            time.Time
	// Generation is the store generation of the group's last change,
	// including changes to its rules and to which servers it holds.
	Generation int64
	// Version is the number of the group's latest version (see
	// versions.go); Pending, the change that awaits its confirmation, if
	// any. Neither is read for the enforcer's snapshots.
	Version int
	Pending *PendingConfirmation
	// Unreadable says why the stored row is not a valid group, or "".
	Unreadable string
	// LogDefaultDrops logs the packets that the default policies (and the
	// SMTP rows) drop.
	LogDefaultDrops bool
}

// ServerRef names a server or a group in another object's answer.
type ServerRef struct {
	ID   string
	Name string
}

// Rule is one rule of a group. Rules apply in Position order, first match
// wins; positions run 1..N without gaps across the group's rules.
type Rule struct {
	ID        string       `json:"id"`
	GroupID   string       `json:"-"` // the audit entry names the group
	Direction Direction    `json:"direction"`
	Protocol  Protocol     `json:"protocol"`
	Action    Policy       `json:"action"`
	IPRange   netip.Prefix `json:"ip_range"` // normalised: host bits cleared
	// DestIPRange optionally narrows the destination; invalid (zero) when unset.
	DestIPRange  netip.Prefix `json:"dest_ip_range,omitzero"`
	DestPortFrom uint16       `json:"dest_port_from,omitempty"` // 0 when unset
	DestPortTo   uint16       `json:"dest_port_to,omitempty"`   // 0 when unset or equal to DestPortFrom
	Position     int          `json:"position"`
	// Description is Rampart's: what the rule is for, in a person's words.
	Description string `json:"description,omitempty"`
	Editable    bool   `json:"-"`
	// Unreadable says why the stored row is not a valid rule (its fields
	// then hold what could be read), or "".
	Unreadable string `json:"-"`
	// Log logs the packets the rule decides, within its group's rate
	// limit.
	Log bool `json:"log,omitempty"`
	// IPSetID and RemoteGroupID are the other two kinds of remote side: the
	// entries of an IP set, or the addresses of the servers of a group
	// (same organization and zone; possibly the rule's own). A rule has
	// exactly one of IPRange, IPSetID and RemoteGroupID; IPRange is the
	// zero prefix when it has one of the others.
	IPSetID       string `json:"ip_set_id,omitempty"`
	RemoteGroupID string `json:"remote_security_group_id,omitempty"`
}

// Remote reports whether the rule's remote side is an IP set or a group
// rather than a range.
func (r Rule) Remote() bool { return r.IPSetID != "" || r.RemoteGroupID != "" }

// Server is a machine a group protects: a VM or container behind a host
// interface, or the host itself (Local).
type Server struct {
	ID             string
	OrganizationID string
	ProjectID      string
	Zone           string
	Name           string
	Type           ServerType
	Interface      string
	Addresses      []netip.Addr
	Local          bool
	Tags           []string
	SecurityGroup  ServerRef
	CreatedAt      time.Time
	ModifiedAt     time.Time
	// HostID and Host are the host the server is on: the one it names
	// (PinnedHost), or the default host; "" while no host exists.
	HostID     string
	Host       string
	PinnedHost string // the host ID stored, "" for the default host
	// Unreadable says why the stored row is not a valid server, or "".
	Unreadable string
}

// Snapshot is the whole desired state at one generation: every group of
// every organization with its rules, and every server.
type Snapshot struct {
	Generation int64
	Groups     []Group           // ordered by ID
	Rules      map[string][]Rule // by group ID, in position order (editable rules only)
	Servers    []Server          // ordered by ID
	Hosts      []Host            // ordered by name; without their reports
	// Unreadable lists, by group ID, the stored rows of a group (its own,
	// its rules', its servers') that could not be read as valid. Nothing
	// may be guessed from them: the enforcer fails such a group closed,
	// keeping what the kernel enforced for it before.
	Unreadable map[string][]string
	// IPSets holds the entries of every IP set a rule of the snapshot
	// names, by set ID: merged prefixes, sorted, IPv4 before IPv6. A set
	// that cannot be read is absent, and the groups using it are in
	// Unreadable.
	IPSets map[string][]netip.Prefix
	// Members holds the addresses of the servers of every group a rule of
	// the snapshot names (RemoteGroupID), by group ID, on every host:
	// sorted, unique, IPv4 before IPv6. A group without addresses maps to
	// an empty slice.
	Members map[string][]netip.Addr
	// setGens are the generations IPSets were read at, and remoteMarks
	// the marks of Unreadable that come from IPSets and Members, for
	// SnapshotSince.
	setGens     map[string]int64
	remoteMarks map[string][]string
}
