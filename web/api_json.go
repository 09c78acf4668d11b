package web

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
)

// scwTime formats dates as Scaleway does: microseconds and "+00:00".
func scwTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000") + "+00:00"
}

type refJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type groupJSON struct {
	ID                    string    `json:"id"`
	Name                  string    `json:"name"`
	Description           string    `json:"description"`
	Organization          string    `json:"organization"`
	Project               string    `json:"project"`
	Tags                  []string  `json:"tags"`
	InboundDefaultPolicy  string    `json:"inbound_default_policy"`
	OutboundDefaultPolicy string    `json:"outbound_default_policy"`
	Stateful              bool      `json:"stateful"`
	OrganizationDefault   bool      `json:"organization_default"`
	ProjectDefault        bool      `json:"project_default"`
	EnableDefaultSecurity bool      `json:"enable_default_security"`
	Servers               []refJSON `json:"servers"`
	CreationDate          string    `json:"creation_date"`
	ModificationDate      string    `json:"modification_date"`
	State                 string    `json:"state"`
	// StateDetail says why a group is in syncing_error (Rampart only).
	StateDetail string `json:"state_detail,omitempty"`
	Zone        string `json:"zone"`
	// PendingConfirmation is the change that awaits its confirmation
	// (Rampart only).
	PendingConfirmation *pendingJSON `json:"pending_confirmation,omitempty"`
	// LogDefaultDrops logs the packets the default policies (and the SMTP
	// rules) drop (Rampart only).
	LogDefaultDrops bool `json:"log_default_drops"`
}

type pendingJSON struct {
	Version  int    `json:"version"`
	Deadline string `json:"deadline"`
}

func pendingToJSON(p *store.PendingConfirmation) *pendingJSON {
	if p == nil || p.Version == 0 {
		return nil
	}
	return &pendingJSON{Version: p.Version, Deadline: scwTime(p.Deadline)}
}

type ruleJSON struct {
	ID           string  `json:"id"`
	Protocol     string  `json:"protocol"`
	Direction    string  `json:"direction"`
	Action       string  `json:"action"`
	IPRange      string  `json:"ip_range"`
	DestIPRange  *string `json:"dest_ip_range"`
	DestPortFrom *uint16 `json:"dest_port_from"`
	DestPortTo   *uint16 `json:"dest_port_to"`
	Position     int     `json:"position"`
	Editable     bool    `json:"editable"`
	Zone         string  `json:"zone"`
	// Packets and Bytes are the rule's counters over every host holding
	// the group, and LastMatched when they last moved (RFC 3339, or null
	// when never), in lists of rules (Rampart only).
	Packets     *uint64         `json:"packets,omitempty"`
	Bytes       *uint64         `json:"bytes,omitempty"`
	LastMatched json.RawMessage `json:"last_matched,omitempty"`
	// Description and Log are Rampart's.
	Description string `json:"description"`
	Log         bool   `json:"log"`
	// IPSetID and RemoteGroupID are Rampart's other remote sides (null
	// when the rule matches its ip_range).
	IPSetID       *string `json:"ip_set_id"`
	RemoteGroupID *string `json:"remote_security_group_id"`
}

// remotePlaceholder is the ip_range shown for a rule that matches an IP
// set or a group. Scaleway's clients require a range (the SDK decodes it
// as an IPNet) and never see the rule's real remote side; these rules are
// also not editable to them, so that their set-alls leave them alone (see
// store.SetRules). The placeholder is the limited broadcast address,
// which Linux never accepts as the source of a packet: a client that
// copies such a rule into a rule of its own (which is all it can do with
// it) gets a rule that matches nothing it would be surprised by.
const remotePlaceholder = "255.255.255.255/32"

type serverJSON struct {
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Organization     string            `json:"organization"`
	Project          string            `json:"project"`
	Zone             string            `json:"zone"`
	Tags             []string          `json:"tags"`
	State            string            `json:"state"`
	CreationDate     string            `json:"creation_date"`
	ModificationDate string            `json:"modification_date"`
	SecurityGroup    refJSON           `json:"security_group"`
	Volumes          map[string]string `json:"volumes"`
	IPv6             *struct{}         `json:"ipv6"`
	PublicIP         *struct{}         `json:"public_ip"`
	PublicIPs        []struct{}        `json:"public_ips"`
	// Rampart's own fields, under names the SDK does not know.
	Type      string   `json:"type"`
	Interface string   `json:"interface"`
	Addresses []string `json:"addresses"`
	Local     bool     `json:"local"`
	// Host is the name of the host the server is on (the default host's
	// when it names none), "" while no host exists.
	Host string `json:"host"`
}

func (s *Server) groupJSON(g store.Group) groupJSON {
	state, reason := s.enf.GroupState(g.ID, g.Generation)
	servers := make([]refJSON, len(g.Servers))
	for i, r := range g.Servers {
		servers[i] = refJSON(r)
	}
	tags := g.Tags
	if tags == nil {
		tags = []string{}
	}
	return groupJSON{
		ID: g.ID, Name: g.Name, Description: g.Description, Organization: g.OrganizationID, Project: g.ProjectID,
		Tags: tags, InboundDefaultPolicy: string(g.InboundDefaultPolicy), OutboundDefaultPolicy: string(g.OutboundDefaultPolicy),
		Stateful: g.Stateful, OrganizationDefault: g.OrganizationDefault, ProjectDefault: g.OrganizationDefault,
		EnableDefaultSecurity: !g.SMTPEnabled, Servers: servers,
		CreationDate: scwTime(g.CreatedAt), ModificationDate: scwTime(g.ModifiedAt),
		State: string(state), StateDetail: reason, Zone: g.Zone, PendingConfirmation: pendingToJSON(g.Pending),
		LogDefaultDrops: g.LogDefaultDrops,
	}
}

func ruleToJSON(r store.Rule, zone string) ruleJSON {
	j := ruleJSON{
		ID: r.ID, Protocol: string(r.Protocol), Direction: string(r.Direction), Action: string(r.Action),
		IPRange: store.FormatIPRange(r.IPRange), Position: r.Position, Editable: r.Editable, Zone: zone,
		Description: r.Description, Log: r.Log,
	}
	if r.DestIPRange.IsValid() {
		d := store.FormatIPRange(r.DestIPRange)
		j.DestIPRange = &d
	}
	if r.Remote() {
		j.IPRange, j.Editable = remotePlaceholder, false
		if r.IPSetID != "" {
			j.IPSetID = &r.IPSetID
		} else {
			j.RemoteGroupID = &r.RemoteGroupID
		}
	}
	if r.DestPortFrom != 0 {
		from := r.DestPortFrom
		j.DestPortFrom = &from
		if r.DestPortTo != 0 && r.DestPortTo != r.DestPortFrom {
			to := r.DestPortTo
			j.DestPortTo = &to
		}
	}
	return j
}

// rulesJSON renders the rules, as listed by the store, of the group of the
// request's :id, with their counters.
func (s *Server) rulesJSON(c echo.Context, rules []store.Rule) ([]ruleJSON, error) {
	counters, err := s.db.GroupCounters(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"))
	if err != nil {
		return nil, err
	}
	out := make([]ruleJSON, len(rules))
	for i, r := range rules {
		out[i] = ruleToJSON(r, zoneOf(c))
		withCounter(&out[i], counters[r.ID])
	}
	return out, nil
}

// withCounter sets a rule's counters.
func withCounter(j *ruleJSON, rc store.RuleCounter) {
	p, b := rc.Packets, rc.Bytes
	j.Packets, j.Bytes = &p, &b
	j.LastMatched = json.RawMessage("null")
	if !rc.LastMatched.IsZero() {
		j.LastMatched, _ = json.Marshal(rc.LastMatched.UTC().Format(time.RFC3339))
	}
}

type eventJSON struct {
	ID         int64           `json:"id"`
	Resource   string          `json:"resource"`
	ResourceID string          `json:"resource_id"`
	Action     string          `json:"action"`
	Actor      string          `json:"actor"`
	At         string          `json:"at"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
	Generation int64           `json:"generation"`
}

func serverToJSON(sv store.Server) serverJSON {
	addrs := make([]string, len(sv.Addresses))
	for i, a := range sv.Addresses {
		addrs[i] = a.String()
	}
	tags := sv.Tags
	if tags == nil {
		tags = []string{}
	}
	return serverJSON{
		ID: sv.ID, Name: sv.Name, Organization: sv.OrganizationID, Project: sv.ProjectID, Zone: sv.Zone,
		Tags: tags, State: "running", CreationDate: scwTime(sv.CreatedAt), ModificationDate: scwTime(sv.ModifiedAt),
		SecurityGroup: refJSON(sv.SecurityGroup), Volumes: map[string]string{}, PublicIPs: []struct{}{},
		Type: string(sv.Type), Interface: sv.Interface, Addresses: addrs, Local: sv.Local, Host: sv.Host,
	}
}

// rulesText answers the editable rules of a list in the text form.
func rulesText(c echo.Context, rules []store.Rule) error {
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(store.FormatRules(rules)))
}
