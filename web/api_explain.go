package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/explain"
	"github.com/rampart-fw/rampart/store"
)

// packetBody is the body of the evaluate endpoints: a packet as a group or
// a server sees it or, with from_server, a packet between two servers.
type packetBody struct {
	Direction  string  `json:"direction"`
	Protocol   string  `json:"protocol"`
	IP         string  `json:"ip"`
	LocalIP    string  `json:"local_ip"`
	Port       *int    `json:"port"`
	State      string  `json:"state"`
	FromServer *string `json:"from_server"`
}

// packet validates b as a packet, naming the bad fields as the client did.
func (b packetBody) packet() (explain.Packet, error) {
	p, err := explain.ParsePacket(explain.PacketInput{Direction: b.Direction, Protocol: b.Protocol,
		RemoteIP: b.IP, LocalIP: b.LocalIP, DestPort: b.Port, State: b.State})
	return p, renameFields(err, packetFieldNames)
}

// flow validates b as a packet from server from_server to the request's
// server: ip and local_ip, optional, are the sender's and the receiver's
// addresses, which otherwise come from the servers.
func (b packetBody) flow() (explain.Flow, error) {
	var direction error
	if b.Direction != "" {
		direction = store.Invalid("direction", "constraint",
			"a packet from another server leaves through that server's group and comes in through this one's: leave direction out")
	}
	f, err := explain.ParseFlow(explain.FlowInput{Protocol: b.Protocol, SourceIP: b.IP, DestIP: b.LocalIP,
		DestPort: b.Port, State: b.State})
	return f, joinInvalid(direction, renameFields(err, flowFieldNames))
}

// handleGroupEvaluate handles "POST /instance/v1/zones/:zone/security_groups/:id/evaluate":
// what the group does with one packet, and which rule decides.
func (s *Server) handleGroupEvaluate(c echo.Context) error {
	var b packetBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	g, rules, err := s.db.GroupRules(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"))
	if err != nil {
		return err
	}
	eg, err := s.explainGroup(c.Request().Context(), g, rules)
	if err != nil {
		return err
	}
	p, err := b.packet()
	if err != nil {
		return err
	}
	d, err := eg.Evaluate(p)
	if err != nil {
		return renameFields(err, packetFieldNames)
	}
	return c.JSON(http.StatusOK, decisionToJSON(d, g))
}

// handleServerEvaluate handles "POST /instance/v1/zones/:zone/servers/:server/evaluate":
// what the server's group does with a packet to or from it, whose local
// address is one of the server's, or with from_server, what happens to a
// packet from that server to this one.
func (s *Server) handleServerEvaluate(c echo.Context) error {
	var b packetBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	ctx, org, zone := c.Request().Context(), orgOf(c), zoneOf(c)
	if b.FromServer != nil {
		path, err := s.evaluateBetween(ctx, org, zone, c.Param("server"), *b.FromServer, b.flow)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, pathJSON{Verdict: string(path.Verdict),
			Outbound: decisionToJSON(path.Outbound, path.From.Group), Inbound: decisionToJSON(path.Inbound, path.To.Group)})
	}
	sgs, err := s.db.ServerGroups(ctx, org, zone, c.Param("server"))
	if err != nil {
		return err
	}
	d, err := s.evaluateServer(c.Request().Context(), sgs[0], b.packet)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, decisionToJSON(d, sgs[0].Group))
}

type pathJSON struct {
	Verdict  string       `json:"verdict"`
	Outbound decisionJSON `json:"outbound"`
	Inbound  decisionJSON `json:"inbound"`
}

// handleGroupAnalysis handles "GET /instance/v1/zones/:zone/security_groups/:id/analysis":
// the group's shadowed, redundant, conflicting and broad rules.
func (s *Server) handleGroupAnalysis(c echo.Context) error {
	g, rules, err := s.db.GroupRules(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"))
	if err != nil {
		return err
	}
	a, err := s.analysis(c.Request().Context(), g, rules)
	if err != nil {
		return err
	}
	out := make([]findingJSON, len(a.Findings))
	for i, f := range a.Findings {
		out[i] = findingJSON{RuleID: f.RuleID, Kind: string(f.Kind), By: f.By, Message: f.Message}
		if f.Example != nil {
			ex := packetToJSON(*f.Example)
			out[i].Example = &ex
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"findings": out, "security_group": refJSON{ID: g.ID, Name: g.Name},
		"generation": g.Generation})
}

type findingJSON struct {
	RuleID  string   `json:"rule_id"`
	Kind    string   `json:"kind"`
	By      []string `json:"by"`
	Message string   `json:"message"`
	// Example is, for a conflict, a packet that the rule matches and an
	// earlier rule of the opposite action decides.
	Example *packetJSON `json:"example,omitempty"`
}

// decisionJSON is what a group does with a packet. The group and its
// generation say which stored version of the group answered.
type decisionJSON struct {
	Verdict       string          `json:"verdict"`
	DecidedBy     explain.RuleRef `json:"decided_by"`
	Trace         []stepJSON      `json:"trace"`
	Packet        packetJSON      `json:"packet"`
	Note          string          `json:"note,omitempty"`
	SecurityGroup refJSON         `json:"security_group"`
	Generation    int64           `json:"generation"`
}

type stepJSON struct {
	explain.RuleRef
	Action  string `json:"action"`
	Matched bool   `json:"matched"`
	// Mismatch names the first part of the rule that the packet did not
	// match: state, family, ip, local_ip, protocol or port.
	Mismatch string `json:"mismatch,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// packetJSON is a packet with the request's field names.
type packetJSON struct {
	Direction string  `json:"direction"`
	Protocol  string  `json:"protocol"`
	IP        string  `json:"ip"`
	LocalIP   string  `json:"local_ip,omitempty"`
	Port      *uint16 `json:"port,omitempty"`
	State     string  `json:"state"`
}

func decisionToJSON(d explain.Decision, g store.Group) decisionJSON {
	out := decisionJSON{Verdict: string(d.Verdict), DecidedBy: d.DecidedBy, Trace: make([]stepJSON, len(d.Trace)),
		Packet: packetToJSON(d.Packet), Note: d.Note, SecurityGroup: refJSON{ID: g.ID, Name: g.Name}, Generation: g.Generation}
	for i, st := range d.Trace {
		out.Trace[i] = stepJSON{RuleRef: st.RuleRef, Action: string(st.Action), Matched: st.Matched,
			Mismatch: partName(st.Mismatch), Reason: st.Reason}
	}
	return out
}

func partName(p explain.Part) string {
	if n, ok := partNames[p]; ok {
		return n
	}
	return string(p)
}

func packetToJSON(p explain.Packet) packetJSON {
	out := packetJSON{Direction: string(p.Direction), Protocol: string(p.Protocol), State: string(p.State)}
	if out.State == "" {
		out.State = string(explain.New)
	}
	if p.Remote.IsValid() {
		out.IP = p.Remote.String()
	}
	if p.Local.IsValid() {
		out.LocalIP = p.Local.String()
	}
	if p.Protocol.HasPorts() {
		port := p.Port
		out.Port = &port
	}
	return out
}
