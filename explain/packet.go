// Package explain answers two questions about a security group from its
// compiled chains, the enforcer.GroupChains that the kernel runs: what
// happens to a given packet (Group.Evaluate, Group.EvaluateServer, Between),
// and which rules are shadowed, redundant, in conflict with an earlier rule
// or too broad (Group.Analyze).
//
// Both answers are derived from the compiled chains and not from the
// store's rules, so that they cannot disagree with the kernel over anything
// the compiler does: the stateful rule, the SMTP rows, a /0 range that
// becomes a family match. The store's rules only supply IDs and positions.
// The packet tester walks the chain's rules as the kernel does, match by
// match; the analysis works on the same matches as sets of packets (boxes:
// family × remote interval × local interval × protocols × port interval),
// so it is exact rather than a heuristic. A differential test applies
// random groups with the real enforcer in network namespaces and compares
// every verdict with the packets that arrive.
package explain

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// State is the connection-tracking state of a packet, as far as the rules
// can tell: the stateful rule accepts established (and related) packets
// before any other rule sees them.
type State string

// States.
const (
	New         State = "new"
	Established State = "established"
)

// Packet is one packet as a group's chain sees it. Remote and Local are
// named from the protected server's side: an inbound packet comes from
// Remote to Local, an outbound one goes from Local to Remote.
type Packet struct {
	Direction store.Direction
	// Protocol is store.TCP, store.UDP, store.ICMP (ICMPv6 for IPv6
	// addresses), or any other IP protocol as its decimal number, such as
	// "47" for GRE, which only rules of protocol ANY match.
	Protocol store.Protocol
	Remote   netip.Addr
	// Local is the protected server's address. It may be left unset; it
	// is needed only to decide a rule that narrows the local side
	// (dest_ip_range), and evaluation then fails naming local_ip.
	Local netip.Addr
	Port  uint16 // destination port, TCP and UDP only; 0 is port 0
	State State  // "" means New
}

// MarshalJSON renders the packet with the request's field names, the port
// only for TCP and UDP.
func (p Packet) MarshalJSON() ([]byte, error) {
	type out struct {
		Direction store.Direction `json:"direction"`
		Protocol  store.Protocol  `json:"protocol"`
		RemoteIP  string          `json:"remote_ip"`
		LocalIP   string          `json:"local_ip,omitempty"`
		DestPort  *uint16         `json:"dest_port,omitempty"`
		State     State           `json:"state"`
	}
	o := out{Direction: p.Direction, Protocol: p.Protocol, State: p.state()}
	if p.Remote.IsValid() {
		o.RemoteIP = p.Remote.String()
	}
	if p.Local.IsValid() {
		o.LocalIP = p.Local.String()
	}
	if p.Protocol.HasPorts() {
		port := p.Port
		o.DestPort = &port
	}
	return json.Marshal(o)
}

func (p Packet) state() State {
	if p.State == "" {
		return New
	}
	return p.State
}

// PacketInput is a packet as a request gives it, before validation. The
// port is an int so that an out-of-range value reaches validation and is
// named in the error rather than lost in decoding.
type PacketInput struct {
	Direction string // "inbound" or "outbound"
	Protocol  string // "TCP", "UDP", "ICMP" or a protocol number
	RemoteIP  string
	LocalIP   string // optional
	DestPort  *int   // required for TCP and UDP, absent otherwise
	State     string // "", "new" or "established"
}

// ParsePacket validates in. Its error is a *store.Error of code
// store.CodeInvalid naming every bad field: direction, protocol, remote_ip,
// local_ip, dest_port or state.
func ParsePacket(in PacketInput) (Packet, error) {
	var fe fieldErrors
	p := Packet{
		Direction: store.Direction(in.Direction),
		Protocol:  store.Protocol(in.Protocol),
		State:     State(in.State),
	}
	p.Remote = parseAddr(&fe, "remote_ip", in.RemoteIP, true)
	p.Local = parseAddr(&fe, "local_ip", in.LocalIP, false)
	p.Port = parsePort(&fe, "dest_port", p.Protocol, in.DestPort)
	checkPacket(&fe, p, packetFields)
	if err := fe.err(); err != nil {
		return Packet{}, err
	}
	return p, nil
}

// Flow is a packet from one server to another: the sender's outbound group
// sees it first, then the receiver's inbound group.
type Flow struct {
	Protocol store.Protocol // as in Packet
	// Source and Dest may be left unset: they are then the sender's and the
	// receiver's first addresses of a family both have, IPv4 first.
	Source, Dest netip.Addr
	Port         uint16 // destination port, TCP and UDP only
	State        State  // "" means New
}

// FlowInput is a flow as a request gives it, before validation.
type FlowInput struct {
	Protocol string
	SourceIP string // optional
	DestIP   string // optional
	DestPort *int   // required for TCP and UDP, absent otherwise
	State    string
}

// ParseFlow validates in. Its error is a *store.Error of code
// store.CodeInvalid naming every bad field: protocol, source_ip, dest_ip,
// dest_port or state.
func ParseFlow(in FlowInput) (Flow, error) {
	var fe fieldErrors
	f := Flow{Protocol: store.Protocol(in.Protocol), State: State(in.State)}
	f.Source = parseAddr(&fe, "source_ip", in.SourceIP, false)
	f.Dest = parseAddr(&fe, "dest_ip", in.DestIP, false)
	f.Port = parsePort(&fe, "dest_port", f.Protocol, in.DestPort)
	checkFlow(&fe, f)
	if err := fe.err(); err != nil {
		return Flow{}, err
	}
	return f, nil
}

// fieldNames names, for one kind of request, the fields that hold the
// remote and local addresses.
type fieldNames struct{ remote, local string }

var (
	packetFields = fieldNames{"remote_ip", "local_ip"}
	// An outbound packet of a flow goes from Source (local) to Dest.
	outboundFields = fieldNames{"dest_ip", "source_ip"}
	inboundFields  = fieldNames{"source_ip", "dest_ip"}
)

// fieldErrors collects validation failures so that one answer names every
// bad field, as the store's validation does.
type fieldErrors []store.FieldError

func (fe *fieldErrors) add(field, reason, format string, args ...any) {
	for _, f := range *fe {
		if f.Field == field {
			return // the first problem of a field is enough
		}
	}
	*fe = append(*fe, store.FieldError{Field: field, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// fieldOrder is the order in which errors name fields: that of a request.
var fieldOrder = []string{"direction", "protocol", "remote_ip", "local_ip", "source_ip", "dest_ip", "dest_port", "state"}

func (fe fieldErrors) err() error {
	if len(fe) == 0 {
		return nil
	}
	slices.SortStableFunc(fe, func(a, b store.FieldError) int {
		return slices.Index(fieldOrder, a.Field) - slices.Index(fieldOrder, b.Field)
	})
	return &store.Error{Code: store.CodeInvalid, Message: "invalid argument(s)", Fields: fe}
}

func parseAddr(fe *fieldErrors, field, s string, required bool) netip.Addr {
	if s == "" {
		if required {
			fe.add(field, "required", "an IP address is required, such as 192.0.2.10 or 2001:db8::10")
		}
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		fe.add(field, "format", "%q is not an IP address", s)
		return netip.Addr{}
	}
	return a
}

func parsePort(fe *fieldErrors, field string, proto store.Protocol, port *int) uint16 {
	switch {
	case port == nil:
		if proto.HasPorts() {
			fe.add(field, "required", "a %s packet has a destination port", proto)
		}
		return 0
	case *port < 0 || *port > 65535:
		fe.add(field, "constraint", "a port is from 0 to 65535 (got %d)", *port)
		return 0
	case portless(proto):
		fe.add(field, "constraint", "ports apply to TCP and UDP only, not %s", protocolText(proto))
		return 0
	}
	return uint16(*port)
}

// portless reports whether proto is a valid packet protocol without ports,
// so that a port given with it is the problem rather than the protocol.
func portless(proto store.Protocol) bool {
	return proto == store.ICMP || protocolOK(proto) && !proto.HasPorts() && proto != "6" && proto != "17"
}

// protocolOK reports whether proto is a valid packet protocol name, leaving
// the family-dependent checks to checkProtocol.
func protocolOK(proto store.Protocol) bool {
	switch proto {
	case store.TCP, store.UDP, store.ICMP:
		return true
	}
	n, err := strconv.ParseUint(string(proto), 10, 8)
	return err == nil && strconv.FormatUint(n, 10) == string(proto)
}

func protocolText(proto store.Protocol) string {
	if n, err := strconv.ParseUint(string(proto), 10, 8); err == nil {
		return l4Name(uint8(n))
	}
	return string(proto)
}

// checkAddr checks an address given as a packet's.
func checkAddr(fe *fieldErrors, field string, a netip.Addr) {
	switch {
	case !a.IsValid():
	case a.Zone() != "":
		fe.add(field, "format", "an address with a zone (%s) cannot be matched by a rule", a)
	case a.Is4In6():
		fe.add(field, "format", "write the IPv4 address %s rather than %s", a.Unmap(), a)
	}
}

// checkProtocol checks proto for a packet of the family of addr (when
// known).
func checkProtocol(fe *fieldErrors, proto store.Protocol, addr netip.Addr) {
	switch {
	case proto == store.ANY:
		fe.add("protocol", "format", "a packet has one protocol: TCP, UDP, ICMP or a protocol number such as 47 (GRE)")
	case !protocolOK(proto):
		fe.add("protocol", "format", "must be TCP, UDP, ICMP or a protocol number such as 47 (GRE) (got %q)", string(proto))
	case proto == "6" || proto == "17":
		fe.add("protocol", "format", "write %s rather than protocol %s", l4Name(mustL4(proto)), proto)
	case addr.IsValid() && proto != store.ICMP && mustL4(proto) == icmpOf(addr):
		fe.add("protocol", "format", "write ICMP rather than protocol %s", proto)
	}
}

func mustL4(proto store.Protocol) uint8 {
	n, _ := strconv.ParseUint(string(proto), 10, 8)
	return uint8(n)
}

func icmpOf(a netip.Addr) uint8 {
	if a.Is4() {
		return uint8(enforcer.L4ICMP)
	}
	return uint8(enforcer.L4ICMPv6)
}

func checkState(fe *fieldErrors, s State) {
	switch s {
	case "", New, Established:
	default:
		fe.add("state", "format", "must be new or established (got %q)", string(s))
	}
}

func checkPort(fe *fieldErrors, proto store.Protocol, port uint16) {
	if port != 0 && portless(proto) {
		fe.add("dest_port", "constraint", "ports apply to TCP and UDP only, not %s", protocolText(proto))
	}
}

// checkPacket validates p, naming its address fields as names says.
func checkPacket(fe *fieldErrors, p Packet, names fieldNames) {
	if p.Direction != store.Inbound && p.Direction != store.Outbound {
		fe.add("direction", "format", "must be inbound or outbound (got %q)", string(p.Direction))
	}
	if !p.Remote.IsValid() {
		fe.add(names.remote, "required", "an IP address is required, such as 192.0.2.10 or 2001:db8::10")
	}
	checkAddr(fe, names.remote, p.Remote)
	checkAddr(fe, names.local, p.Local)
	if p.Remote.IsValid() && p.Local.IsValid() && p.Remote.Is4() != p.Local.Is4() {
		fe.add(names.local, "constraint", "must be of the same IP family as %s", names.remote)
	}
	checkProtocol(fe, p.Protocol, p.Remote)
	checkPort(fe, p.Protocol, p.Port)
	checkState(fe, p.State)
}

func checkFlow(fe *fieldErrors, f Flow) {
	checkAddr(fe, "source_ip", f.Source)
	checkAddr(fe, "dest_ip", f.Dest)
	if f.Source.IsValid() && f.Dest.IsValid() && f.Source.Is4() != f.Dest.Is4() {
		fe.add("dest_ip", "constraint", "must be of the same IP family as source_ip")
	}
	addr := f.Source
	if !addr.IsValid() {
		addr = f.Dest
	}
	checkProtocol(fe, f.Protocol, addr)
	checkPort(fe, f.Protocol, f.Port)
	checkState(fe, f.State)
}

// l4Of returns the IP protocol number of a validated packet.
func l4Of(p Packet) uint8 {
	switch p.Protocol {
	case store.TCP:
		return uint8(enforcer.L4TCP)
	case store.UDP:
		return uint8(enforcer.L4UDP)
	case store.ICMP:
		return icmpOf(p.Remote)
	}
	return mustL4(p.Protocol)
}

// protocolOf is the inverse of l4Of for a packet of the family of a.
func protocolOf(l4 uint8, a netip.Addr) store.Protocol {
	switch {
	case l4 == uint8(enforcer.L4TCP):
		return store.TCP
	case l4 == uint8(enforcer.L4UDP):
		return store.UDP
	case l4 == icmpOf(a):
		return store.ICMP
	}
	return store.Protocol(strconv.Itoa(int(l4)))
}

// l4Name names an IP protocol number for messages.
func l4Name(l4 uint8) string {
	switch enforcer.L4(l4) {
	case enforcer.L4TCP:
		return "TCP"
	case enforcer.L4UDP:
		return "UDP"
	case enforcer.L4ICMP:
		return "ICMP"
	case enforcer.L4ICMPv6:
		return "ICMPv6"
	case 47:
		return "GRE"
	}
	return "protocol " + strconv.Itoa(int(l4))
}
