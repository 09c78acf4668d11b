// Package views renders Rampart's console: the layout, its pages and the
// htmx partials, as templ components. Each partial is also a part of its
// page, so that a page and its partial come from one source. Forms have a
// view-model whose Validate method checks what can be checked before the
// store; the store's field errors are then added with SetStoreError.
package views

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rampart-fw/rampart/store"
)

// Page is what the layout needs on every page.
type Page struct {
	Title      string
	Section    string // "groups", "servers" or "tokens": the highlighted link
	Path       string // the current path, kept by the zone selector
	Org        string
	Email      string
	Zone       string
	Zones      []string
	Mode       string // "nftables" or "preview"
	ModeReason string
	CSRF       string
	Flash      Flash
}

// Flash is a one-time message shown at the top of a page or section.
type Flash struct {
	Kind    string // "success", "error" or "info"
	Message string
}

// FieldErrors maps a form field's name to its message.
type FieldErrors map[string]string

// Add records msg for field unless it already has one.
func (e *FieldErrors) Add(field, msg string) {
	if *e == nil {
		*e = FieldErrors{}
	}
	if _, ok := (*e)[field]; !ok {
		(*e)[field] = msg
	}
}

// Has reports whether field has an error.
func (e FieldErrors) Has(field string) bool { _, ok := e[field]; return ok }

// addStoreError copies the field errors of a *store.Error into e, with
// field names such as "servers[2]" folded to "servers". It returns the
// message of an error that names no field, or "" if there is none.
func addStoreError(e *FieldErrors, err error, known ...string) string {
	var se *store.Error
	if !errors.As(err, &se) {
		return ""
	}
	if len(se.Fields) == 0 {
		return se.Message
	}
	var loose []string
	for _, f := range se.Fields {
		name := f.Field
		if i := strings.IndexByte(name, '['); i >= 0 {
			name = name[:i]
		}
		if contains(known, name) {
			e.Add(name, f.Message)
		} else {
			loose = append(loose, f.Message)
		}
	}
	return strings.Join(loose, "; ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func checkPolicy(e *FieldErrors, field, v string) {
	if v != string(store.Accept) && v != string(store.Drop) {
		e.Add(field, "choose accept or drop")
	}
}

func checkName(e *FieldErrors, name string) {
	switch n := utf8.RuneCountInString(name); {
	case strings.TrimSpace(name) == "":
		e.Add("name", "a name is required")
	case n > store.MaxNameLength:
		e.Add("name", "at most "+strconv.Itoa(store.MaxNameLength)+" characters")
	}
}

func checkDescription(e *FieldErrors, d string) {
	if utf8.RuneCountInString(d) > store.MaxDescriptionLength {
		e.Add("description", "at most "+strconv.Itoa(store.MaxDescriptionLength)+" characters")
	}
}

// LoginForm is the sign-in form.
type LoginForm struct {
	Email    string
	Password string
	Next     string
	Errors   FieldErrors
	Message  string
}

// Validate checks that both fields are filled.
func (f *LoginForm) Validate() bool {
	if strings.TrimSpace(f.Email) == "" {
		f.Errors.Add("email", "enter your email address")
	}
	if f.Password == "" {
		f.Errors.Add("password", "enter your password")
	}
	return len(f.Errors) == 0
}

// GroupForm creates a security group.
type GroupForm struct {
	Name        string
	Description string
	Zone        string
	Inbound     string
	Outbound    string
	Stateful    bool
	SMTPBlocked bool
	ServerIDs   []string
	Errors      FieldErrors
	Message     string // a refusal that names no field
}

// NewGroupForm returns the form with the documentation's recommendations
// preselected: inbound drop, outbound accept, stateful, SMTP blocked.
func NewGroupForm(zone string) GroupForm {
	return GroupForm{Zone: zone, Inbound: "drop", Outbound: "accept", Stateful: true, SMTPBlocked: true}
}

// Validate checks the form before it reaches the store.
func (f *GroupForm) Validate(zones []string) bool {
	checkName(&f.Errors, f.Name)
	checkDescription(&f.Errors, f.Description)
	if !contains(zones, f.Zone) {
		f.Errors.Add("zone", "choose one of the zones")
	}
	checkPolicy(&f.Errors, "inbound_default_policy", f.Inbound)
	checkPolicy(&f.Errors, "outbound_default_policy", f.Outbound)
	return len(f.Errors) == 0
}

// SetStoreError shows a store error beside its fields.
func (f *GroupForm) SetStoreError(err error) {
	f.Message = addStoreError(&f.Errors, err, "name", "description", "inbound_default_policy", "outbound_default_policy", "servers", "zone")
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
	Errors      FieldErrors
	Message     string
}

// OverviewFormOf fills the form from a group.
func OverviewFormOf(g store.Group) OverviewForm {
	return OverviewForm{Name: g.Name, Description: g.Description, Inbound: string(g.InboundDefaultPolicy),
		Outbound: string(g.OutboundDefaultPolicy), Stateful: g.Stateful, SMTPEnabled: !g.EnableDefaultSecurity}
}

// Validate checks the form before it reaches the store.
func (f *OverviewForm) Validate() bool {
	checkName(&f.Errors, f.Name)
	checkDescription(&f.Errors, f.Description)
	checkPolicy(&f.Errors, "inbound_default_policy", f.Inbound)
	checkPolicy(&f.Errors, "outbound_default_policy", f.Outbound)
	return len(f.Errors) == 0
}

// SetStoreError shows a store error beside its fields.
func (f *OverviewForm) SetStoreError(err error) {
	f.Message = addStoreError(&f.Errors, err, "name", "description", "inbound_default_policy", "outbound_default_policy", "stateful")
}

// RuleForm adds or edits a rule. Ports are kept as typed so that a bad
// value is shown back as it was entered.
type RuleForm struct {
	ID        string // edit: the rule
	Direction string
	Action    string
	Protocol  string
	IPRange   string
	PortFrom  string
	PortTo    string
	Errors    FieldErrors
	Message   string
}

// NewRuleForm returns an empty add-rule form.
func NewRuleForm() RuleForm {
	return RuleForm{Direction: "inbound", Action: "accept", Protocol: "TCP", IPRange: "0.0.0.0/0"}
}

// RuleFormOf fills the form from a rule.
func RuleFormOf(r store.Rule) RuleForm {
	f := RuleForm{ID: r.ID, Direction: string(r.Direction), Action: string(r.Action), Protocol: string(r.Protocol),
		IPRange: store.FormatIPRange(r.IPRange)}
	if r.DestPortFrom != 0 {
		f.PortFrom = strconv.Itoa(int(r.DestPortFrom))
	}
	if r.DestPortTo != 0 {
		f.PortTo = strconv.Itoa(int(r.DestPortTo))
	}
	return f
}

func parsePort(e *FieldErrors, field, v string) (int, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		e.Add(field, "a port is a number from 1 to 65535")
		return 0, false
	}
	return n, true
}

// Validate checks the form and returns the rule it describes.
func (f *RuleForm) Validate() (store.RuleInput, bool) {
	if f.Direction != "inbound" && f.Direction != "outbound" {
		f.Errors.Add("direction", "choose inbound or outbound")
	}
	checkPolicy(&f.Errors, "action", f.Action)
	proto := store.Protocol(f.Protocol)
	switch proto {
	case store.TCP, store.UDP, store.ICMP, store.ANY:
	default:
		f.Errors.Add("protocol", "choose TCP, UDP, ICMP or ANY")
	}
	f.IPRange = strings.TrimSpace(f.IPRange)
	if f.IPRange == "" {
		f.Errors.Add("ip_range", "enter an IP range such as 0.0.0.0/0 or 192.0.2.10")
	} else if _, ok := store.ParseIPRange(f.IPRange); !ok {
		f.Errors.Add("ip_range", "not a CIDR range or an IP address (e.g. 10.0.0.0/8, 2001:db8::/32)")
	}
	from, okFrom := parsePort(&f.Errors, "dest_port_from", f.PortFrom)
	to, okTo := parsePort(&f.Errors, "dest_port_to", f.PortTo)
	if okFrom && okTo {
		switch {
		case (from != 0 || to != 0) && !proto.HasPorts() && proto != "":
			f.Errors.Add("dest_port_from", "ports apply to TCP and UDP only: leave them empty for "+string(proto))
		case to != 0 && from == 0:
			f.Errors.Add("dest_port_from", "a port range needs its first port")
		case to != 0 && to < from:
			f.Errors.Add("dest_port_to", "must not be below the first port")
		}
	}
	in := store.RuleInput{Direction: store.Direction(f.Direction), Action: store.Policy(f.Action), Protocol: proto,
		IPRange: f.IPRange, DestPortFrom: &from, DestPortTo: &to}
	return in, len(f.Errors) == 0
}

// SetStoreError shows a store error beside its fields.
func (f *RuleForm) SetStoreError(err error) {
	f.Message = addStoreError(&f.Errors, err, "direction", "action", "protocol", "ip_range", "dest_port_from", "dest_port_to")
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
	Errors        FieldErrors
	Message       string
}

// ServerFormOf fills the form from a server.
func ServerFormOf(s store.Server) ServerForm {
	addrs := make([]string, len(s.Addresses))
	for i, a := range s.Addresses {
		addrs[i] = a.String()
	}
	return ServerForm{ID: s.ID, Name: s.Name, Zone: s.Zone, Type: string(s.Type), Interface: s.Interface,
		Addresses: strings.Join(addrs, ", "), Local: s.Local, SecurityGroup: s.SecurityGroup.ID}
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

// Validate checks the form before it reaches the store.
func (f *ServerForm) Validate(zones []string) bool {
	checkName(&f.Errors, f.Name)
	if !contains(zones, f.Zone) {
		f.Errors.Add("zone", "choose one of the zones")
	}
	if f.Type != string(store.Instance) && f.Type != string(store.BareMetal) {
		f.Errors.Add("type", "choose Instance or BareMetal")
	}
	for _, a := range f.AddressList() {
		if _, err := netip.ParseAddr(a); err != nil {
			f.Errors.Add("addresses", "\""+a+"\" is not an IPv4 or IPv6 address")
			break
		}
	}
	return len(f.Errors) == 0
}

// SetStoreError shows a store error beside its fields.
func (f *ServerForm) SetStoreError(err error) {
	f.Message = addStoreError(&f.Errors, err, "name", "type", "interface", "addresses", "local", "security_group", "zone")
}

// TokenForm generates an API token.
type TokenForm struct {
	Description string
	Errors      FieldErrors
	Message     string
}

// Validate checks the description's length.
func (f *TokenForm) Validate() bool {
	if utf8.RuneCountInString(strings.TrimSpace(f.Description)) > store.MaxTokenDescription {
		f.Errors.Add("description", "at most "+strconv.Itoa(store.MaxTokenDescription)+" characters")
	}
	return len(f.Errors) == 0
}

// SetStoreError shows a store error beside its fields.
func (f *TokenForm) SetStoreError(err error) {
	f.Message = addStoreError(&f.Errors, err, "description")
}
