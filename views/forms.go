package views

import (
	"strconv"
	"strings"

	"github.com/rampart-fw/rampart/store"
)

// LoginForm is the sign-in form.
type LoginForm struct {
	Email    string
	Password string
	Next     string
	Errors   FieldErrors
	Message  string
}

// GroupForm creates a security group. Its field names are the API's.
type GroupForm struct {
	Name        string
	Description string
	Zone        string
	Inbound     string
	Outbound    string
	Stateful    bool
	SMTPEnabled bool
	ServerIDs   []string
	Errors      FieldErrors
	Message     string // a refusal that names no field of the form
}

// GroupFormFields are the fields of GroupForm, as posted.
var GroupFormFields = []string{"name", "description", "zone", "inbound_default_policy", "outbound_default_policy",
	"stateful", "smtp_enabled", "servers"}

// NewGroupForm returns the form with the documentation's recommendations
// preselected: inbound drop, outbound accept, stateful, SMTP not enabled.
func NewGroupForm(zone string) GroupForm {
	return GroupForm{Zone: zone, Inbound: "drop", Outbound: "accept", Stateful: true}
}

// Selected reports whether server id is checked.
func (f GroupForm) Selected(id string) bool { return contains(f.ServerIDs, id) }

// OverviewForm edits a group's settings.
type OverviewForm struct {
	Name        string
	Description string
	Inbound     string
	Outbound    string
	Stateful    bool
	SMTPEnabled bool
	// LogDefaultDrops logs the packets the default policies drop.
	LogDefaultDrops bool
	// Confirm asks for the change to roll back unless confirmed within
	// ConsoleConfirmSeconds.
	Confirm bool
	Errors  FieldErrors
	Message string
}

// OverviewFormFields are the fields of OverviewForm, as posted.
var OverviewFormFields = []string{"name", "description", "inbound_default_policy", "outbound_default_policy", "stateful", "smtp_enabled",
	"log_default_drops", "confirm_within"}

// ConsoleConfirmSeconds is the console's confirmation window: "Roll back
// unless I confirm within 60 s".
const ConsoleConfirmSeconds = 60

// OverviewFormOf fills the form from a group.
func OverviewFormOf(g store.Group) OverviewForm {
	return OverviewForm{Name: g.Name, Description: g.Description, Inbound: string(g.InboundDefaultPolicy),
		Outbound: string(g.OutboundDefaultPolicy), Stateful: g.Stateful, SMTPEnabled: g.SMTPEnabled, LogDefaultDrops: g.LogDefaultDrops}
}

// RuleForm adds or edits a rule. Ports are kept as typed so that a refused
// value is shown back as it was entered.
type RuleForm struct {
	ID        string // edit: the rule
	Direction string
	Action    string
	Protocol  string
	IPRange   string
	// IPSetID or RemoteGroupID, when one is chosen, is the remote side
	// instead of IPRange (which the form then ignores).
	IPSetID       string
	RemoteGroupID string
	PortFrom      string
	PortTo        string
	Description   string
	Log           bool // "Log matches"
	Errors        FieldErrors
	Message       string
}

// RuleFormFields are the fields of RuleForm, as posted.
var RuleFormFields = []string{"direction", "action", "protocol", "ip_range", "ip_set_id", "remote_security_group_id", "dest_port_from", "dest_port_to", "description", "log"}

// NewRuleForm returns an empty add-rule form.
func NewRuleForm() RuleForm {
	return RuleForm{Direction: "inbound", Action: "accept", Protocol: "TCP", IPRange: "0.0.0.0/0"}
}

// RuleFormOf fills the form from a rule.
func RuleFormOf(r store.Rule) RuleForm {
	f := RuleForm{ID: r.ID, Direction: string(r.Direction), Action: string(r.Action), Protocol: string(r.Protocol),
		IPRange: store.FormatIPRange(r.IPRange), IPSetID: r.IPSetID, RemoteGroupID: r.RemoteGroupID, Description: r.Description, Log: r.Log}
	if r.DestPortFrom != 0 {
		f.PortFrom = strconv.Itoa(int(r.DestPortFrom))
	}
	if r.DestPortTo != 0 {
		f.PortTo = strconv.Itoa(int(r.DestPortTo))
	}
	return f
}

// ServerForm registers or edits a server.
type ServerForm struct {
	ID            string // edit: the server
	Name          string
	Zone          string
	Type          string
	Interface     string
	Addresses     string // comma-separated
	Local         bool
	SecurityGroup string // "" for the zone's default
	Host          string // "" for the default host
	Errors        FieldErrors
	Message       string
}

// ServerFormFields are the fields of ServerForm, as posted.
var ServerFormFields = []string{"name", "zone", "type", "interface", "addresses", "local", "security_group", "host"}

// ServerFormOf fills the form from a server.
func ServerFormOf(s store.Server) ServerForm {
	addrs := make([]string, len(s.Addresses))
	for i, a := range s.Addresses {
		addrs[i] = a.String()
	}
	return ServerForm{ID: s.ID, Name: s.Name, Zone: s.Zone, Type: string(s.Type), Interface: s.Interface,
		Addresses: strings.Join(addrs, ", "), Local: s.Local, SecurityGroup: s.SecurityGroup.ID, Host: hostOf(s)}
}

// hostOf is what the form shows of a server's host: the one it names, ""
// when it is on the default host without naming it.
func hostOf(s store.Server) string {
	if s.PinnedHost == "" {
		return ""
	}
	return s.Host
}

// AddressList splits the addresses field.
func (f ServerForm) AddressList() []string {
	var out []string
	for _, a := range strings.Split(f.Addresses, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// TokenForm generates an API token.
type TokenForm struct {
	Description string
	Errors      FieldErrors
	Message     string
}

// TokenFormFields are the fields of TokenForm, as posted.
var TokenFormFields = []string{"description"}

// URL is the path of a rule action of the section, plus suffix ("/rules/…"):
// the group's, or its draft's.
func (v RulesView) URL(suffix string) string {
	if v.Draft {
		return GroupURL(v.Group, "/draft"+suffix)
	}
	return GroupURL(v.Group, suffix)
}

// columns is how many columns a rules table has.
func (v RulesView) columns() int {
	if v.Draft {
		return 7
	}
	return 9
}
