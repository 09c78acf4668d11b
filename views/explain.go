package views

import (
	"strings"

	"github.com/rampart-fw/rampart/store"
)

// TesterForm is the packet tester's form. Its field names are the API's:
// direction, protocol, ip (the remote address), local_ip (the protected
// server's), port and state; from_server for a packet between two servers.
type TesterForm struct {
	Direction  string
	Protocol   string
	IP         string
	LocalIP    string
	Port       string // as typed, so that a refused value is shown back
	State      string
	FromServer string
	Errors     FieldErrors
	Message    string
}

// TesterFormFields are the fields of TesterForm, as posted.
var TesterFormFields = []string{"direction", "protocol", "ip", "local_ip", "port", "state", "from_server"}

// NewTesterForm returns the form for a new inbound TCP connection.
func NewTesterForm() TesterForm {
	return TesterForm{Direction: "inbound", Protocol: "TCP", State: "new"}
}

// PacketAnswer is what the tester found: one decision for a group or a
// server, or two for a packet between servers (the sender's outbound
// group, then the receiver's inbound group).
type PacketAnswer struct {
	Verdict store.Policy
	Summary string // "Accepted by rule 1."
	// DecidedRule is the ID of the rule of the page's group that decided,
	// which the page highlights in its Rules section; "" when none did.
	DecidedRule string
	Sides       []PacketSide
}

// PacketSide is what one group does with the packet.
type PacketSide struct {
	Title     string // "" when the answer has one side
	Group     store.Group
	Packet    string // the packet as the group sees it, for a person
	Verdict   store.Policy
	DecidedBy string // "rule 3", "SMTP rule 1", "the default policy", …
	RuleHref  string // link to the deciding rule's row, when it is a rule
	Note      string
	Steps     []TraceStep
}

// TraceStep is one rule the packet was checked against, in chain order.
type TraceStep struct {
	Name    string
	Href    string // link to the rule's row, when it is a rule
	Action  store.Policy
	Matched bool
	Reason  string // why it did not match
}

// GroupTester is the Test a packet section of a group's page; it is also
// the htmx partial that the tester answers with.
type GroupTester struct {
	Group  store.Group
	CSRF   string
	Form   TesterForm
	Answer *PacketAnswer
}

// ServerTester is the Test a packet section of a server's page: a packet
// to or from an address, or from another server of the zone.
type ServerTester struct {
	Server store.Server
	CSRF   string
	Peers  []store.Server // the zone's other servers
	Packet TesterForm
	Flow   TesterForm
	Answer *PacketAnswer
}

// Finding is what the rule analysis found about a rule.
type Finding struct {
	Kind    string // shadowed, redundant, conflict or broad
	Message string
}

// Choice is an option of a select.
type Choice struct{ Value, Label string }

var (
	directionChoices = []Choice{{"inbound", "Inbound (to the servers)"}, {"outbound", "Outbound (from the servers)"}}
	packetProtocols  = []Choice{{"TCP", "TCP"}, {"UDP", "UDP"}, {"ICMP", "ICMP (ICMPv6 for IPv6)"}}
	stateChoices     = []Choice{{"new", "New connection"}, {"established", "Reply (established connection)"}}
)

// findingLabel names a kind of finding for a person.
func findingLabel(kind string) string {
	switch kind {
	case "shadowed":
		return "Shadowed"
	case "redundant":
		return "Redundant"
	case "conflict":
		return "Conflict"
	case "broad":
		return "Broad"
	}
	return kind
}

// resultVerb is how the tester's answer says what happened.
func resultVerb(p store.Policy) string {
	if p == store.Drop {
		return "dropped"
	}
	return "accepted"
}

// capital starts s with a capital letter, as a table cell does.
func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// peerChoices lists the servers a packet may come from.
func peerChoices(peers []store.Server) []Choice {
	out := make([]Choice, len(peers))
	for i, s := range peers {
		out[i] = Choice{s.ID, s.Name + " (group “" + s.SecurityGroup.Name + "”)"}
	}
	return out
}
