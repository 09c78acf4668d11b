package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/google/uuid"
)

// RuleInput describes a rule to create, or one element of a set-all.
// Ports are ints so that out-of-range values reach validation and are named
// in the error rather than lost in decoding.
type RuleInput struct {
	ID           string // set-all: the existing rule this element updates
	Direction    Direction
	Protocol     Protocol
	Action       Policy
	IPRange      string
	DestPortFrom *int // nil or 0: no port
	DestPortTo   *int // nil, 0 or equal to from: a single port
	Position     int  // 0: append (create) or keep the array's order (set-all)
	// NotEditable marks a set-all element the client says is the
	// system's ("editable": false): it is ignored.
	NotEditable bool

	// Rampart's fields, which Scaleway's clients do not know: nil is
	// absent, and a set-all element with an ID keeps the stored value of
	// an absent one (a client that rewrites every rule must not erase what
	// it cannot see); a new rule takes "". See KeptRuleFields.
	DestIPRange *string // optional; "" unsets
	Description *string // up to MaxDescriptionLength characters
	// IPSetID and RemoteGroupID give the remote side instead of IPRange
	// (exactly one of the three). "" unsets.
	IPSetID       *string
	RemoteGroupID *string
	Log           *bool // log the packets the rule decides; a new rule does not
}

// KeptRuleFields are the wire names of RuleInput's Rampart fields, which a
// set-all element keeps when it leaves them out (nil). The web layer's
// decoding test checks that every Rampart field of its rule body is one.
var KeptRuleFields = []string{"dest_ip_range", "description", "ip_set_id", "remote_security_group_id", "log"}

// keepStored fills the absent Rampart fields of a set-all element from the
// stored rule it updates.
func (in *RuleInput) keepStored(old Rule) {
	if in.DestIPRange == nil {
		d := prefixText(old.DestIPRange)
		in.DestIPRange = &d
	}
	if in.Description == nil {
		d := old.Description
		in.Description = &d
	}
	if in.IPSetID == nil {
		d := old.IPSetID
		in.IPSetID = &d
	}
	if in.RemoteGroupID == nil {
		d := old.RemoteGroupID
		in.RemoteGroupID = &d
	}
	if in.Log == nil {
		l := old.Log
		in.Log = &l
	}
}

// knowsRemotes reports whether a set-all element speaks of the remote
// kinds a Scaleway client does not know (ip_set_id,
// remote_security_group_id), even to unset them.
func (in RuleInput) knowsRemotes() bool { return in.IPSetID != nil || in.RemoteGroupID != nil }

// RulePatch changes the fields that are not nil. A port of 0 unsets it;
// switching to ICMP or ANY clears the ports.
type RulePatch struct {
	Direction    *Direction
	Protocol     *Protocol
	Action       *Policy
	IPRange      *string
	DestIPRange  *string // "" unsets
	DestPortFrom *int
	DestPortTo   *int
	Position     *int    // 0 keeps the position
	Description  *string // "" unsets
	// IPSetID or RemoteGroupID, set to an ID, make that the remote side
	// in place of the others; IPRange on a rule with another remote side
	// must come with that side unset ("").
	IPSetID       *string
	RemoteGroupID *string
	Log           *bool
}

const ruleColumns = `id, group_id, position, direction, protocol, action, ip_range, dest_ip_range, dest_port_from, dest_port_to, description, ip_set_id, remote_security_group_id, log`

// scanRule reads a rule back through the checks it was written with, so
// that a row that is not what the store writes (an older schema, a hand
// edit, a damaged file) is marked Unreadable instead of guessed at: a
// range that fails to parse must never read as "any address".
func scanRule(sc scanner) (Rule, error) {
	var id, groupID string
	var pos int
	var in RuleInput
	var from, to int
	var dest, desc, set, group string
	var logged int
	if err := sc.Scan(&id, &groupID, &pos, &in.Direction, &in.Protocol, &in.Action, &in.IPRange, &dest, &from, &to, &desc, &set, &group, &logged); err != nil {
		return Rule{}, err
	}
	isLogged := logged == 1
	in.DestIPRange, in.Description, in.IPSetID, in.RemoteGroupID, in.Log = &dest, &desc, &set, &group, &isLogged
	in.DestPortFrom, in.DestPortTo = &from, &to
	var fe fieldErrors
	if in.Direction == "" || in.Protocol == "" || in.Action == "" {
		fe.add("rule", "required", "direction, protocol and action are required")
	}
	r := buildRule(&fe, "", in)
	if from != 0 && int(r.DestPortFrom) != from || to != 0 && int(r.DestPortTo) != to && to != from {
		fe.add("dest_port_to", "format", "stored ports %d-%d are not normalised", from, to)
	}
	if logged != 0 && logged != 1 {
		fe.add("log", "format", "stored value %d is not a boolean", logged)
	}
	r.ID, r.GroupID, r.Position = id, groupID, pos
	if len(fe) > 0 {
		r.Unreadable = fe.text()
	}
	return r, nil
}

func findRules(ctx context.Context, tx *txn, groupID string) ([]Rule, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+ruleColumns+` FROM rules WHERE group_id = ? ORDER BY position, id`, groupID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	rules := []Rule{}
	for rows.Next() {
		r, err := scanRule(rows)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, rows.Err()
}

// Rules returns the editable rules of a group in position order.
func (db *DB) Rules(ctx context.Context, orgID, zone, groupID string) ([]Rule, error) {
	if err := db.checkZone(zone); err != nil {
		return nil, err
	}
	var rules []Rule
	err := db.read(ctx, func(tx *txn) error {
		if _, err := findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		var err error
		rules, err = findRules(ctx, tx, groupID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list rules of group %s: %w", groupID, err)
	}
	return rules, nil
}

// ListRules returns one page of a group's rules as the API lists them:
// while the group blocks SMTP, its six non-editable rules first (numbered
// 1..6 on their own), then the editable rules in position order; and the
// number of rules in all. Without a PerPage, pages hold 100 rules.
func (db *DB) ListRules(ctx context.Context, orgID, zone, groupID string, p Page) ([]Rule, int, error) {
	limit, offset, err := p.bounds(100)
	if err != nil {
		return nil, 0, err
	}
	if err := db.checkZone(zone); err != nil {
		return nil, 0, err
	}
	var all []Rule
	err = db.read(ctx, func(tx *txn) error {
		g, err := findGroup(ctx, tx, orgID, zone, groupID)
		if err != nil {
			return err
		}
		all, err = listedRules(ctx, tx, g)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list rules of group %s: %w", groupID, err)
	}
	start := min(offset, len(all))
	return all[start:min(start+limit, len(all))], len(all), nil
}

// listedRules returns the rules of g as the API lists them: the SMTP rules
// first while SMTP is blocked, then the editable rules.
func listedRules(ctx context.Context, tx *txn, g Group) ([]Rule, error) {
	rules, err := findRules(ctx, tx, g.ID)
	if err != nil || g.SMTPEnabled {
		return rules, err
	}
	return append(SMTPRules(g.ID), rules...), nil
}

// Rule returns one rule of a group, one of its SMTP rules included.
func (db *DB) Rule(ctx context.Context, orgID, zone, groupID, ruleID string) (Rule, error) {
	if err := db.checkZone(zone); err != nil {
		return Rule{}, err
	}
	var r Rule
	err := db.read(ctx, func(tx *txn) error {
		g, err := findGroup(ctx, tx, orgID, zone, groupID)
		if err != nil {
			return err
		}
		if !g.SMTPEnabled {
			for _, smtp := range SMTPRules(g.ID) {
				if smtp.ID == ruleID {
					r = smtp
					return nil
				}
			}
		}
		r, err = findRule(ctx, tx, groupID, ruleID)
		return err
	})
	if err != nil {
		return Rule{}, fmt.Errorf("get rule %s: %w", ruleID, err)
	}
	return r, nil
}

func findRule(ctx context.Context, tx *txn, groupID, ruleID string) (Rule, error) {
	r, err := scanRule(tx.QueryRowContext(ctx, `SELECT `+ruleColumns+` FROM rules WHERE id = ? AND group_id = ?`, ruleID, groupID))
	if errors.Is(err, sql.ErrNoRows) {
		return Rule{}, notFound(ResourceRule, ruleID)
	}
	return r, err
}

// buildRule validates in and returns the rule it describes; field names are
// prefixed with prefix ("" or "rules[3].").
func buildRule(fe *fieldErrors, prefix string, in RuleInput) Rule {
	r := Rule{Direction: in.Direction, Protocol: in.Protocol, Action: in.Action, Editable: true}
	if r.Direction == "" {
		r.Direction = Inbound
	}
	if r.Action == "" {
		r.Action = Accept
	}
	if r.Protocol == "" {
		r.Protocol = TCP
	}
	if r.Direction != Inbound && r.Direction != Outbound {
		fe.add(prefix+"direction", "format", "must be inbound or outbound (got %q)", string(in.Direction))
	}
	if r.Action != Accept && r.Action != Drop {
		fe.add(prefix+"action", "format", "must be accept or drop (got %q)", string(in.Action))
	}
	switch r.Protocol {
	case TCP, UDP, ICMP, ANY:
	default:
		fe.add(prefix+"protocol", "format", "must be TCP, UDP, ICMP or ANY (got %q)", string(in.Protocol))
	}
	r.IPSetID, r.RemoteGroupID = deref(in.IPSetID), deref(in.RemoteGroupID)
	switch remotes := countTrue(in.IPRange != "", r.IPSetID != "", r.RemoteGroupID != ""); {
	case remotes == 0:
		fe.add(prefix+"ip_range", "required", "an IP range is required, such as 0.0.0.0/0 or 192.0.2.10 (or an ip_set_id or a remote_security_group_id)")
	case remotes > 1:
		field := "remote_security_group_id"
		if in.IPRange != "" {
			field = "ip_range"
		}
		fe.add(prefix+field, "constraint", "a rule matches one of ip_range, ip_set_id and remote_security_group_id: give one, and the others as \"\"")
	case in.IPRange != "":
		if p, ok := ParseIPRange(in.IPRange); ok {
			r.IPRange = p
		} else {
			fe.add(prefix+"ip_range", "format", "%q is not a CIDR range or an IP address", in.IPRange)
		}
	case r.IPSetID != "" && !validID(r.IPSetID):
		fe.add(prefix+"ip_set_id", "format", "%q is not an IP set ID", r.IPSetID)
	case r.RemoteGroupID != "" && !validID(r.RemoteGroupID):
		fe.add(prefix+"remote_security_group_id", "format", "%q is not a security group ID", r.RemoteGroupID)
	}
	if d := deref(in.DestIPRange); d != "" {
		if p, ok := ParseIPRange(d); ok {
			r.DestIPRange = p
		} else {
			fe.add(prefix+"dest_ip_range", "format", "%q is not a CIDR range or an IP address", d)
		}
	}
	if r.IPRange.IsValid() && r.DestIPRange.IsValid() && r.IPRange.Addr().Is4() != r.DestIPRange.Addr().Is4() {
		fe.add(prefix+"dest_ip_range", "constraint", "must be of the same IP family as ip_range")
	}
	from, to := intOr0(in.DestPortFrom), intOr0(in.DestPortTo)
	checkPorts(fe, prefix, r.Protocol, from, to)
	r.DestPortFrom, r.DestPortTo = normalisePorts(from, to)
	if in.Position < 0 {
		fe.add(prefix+"position", "constraint", "must be 0 (append) or a position from 1")
	}
	r.Position = in.Position
	// A description is checked as typed, then kept without the spaces
	// around it, which a reader cannot see (and the rules' text form
	// could not carry).
	if d := deref(in.Description); checkDescription(fe, prefix+"description", d) {
		r.Description = strings.TrimSpace(d)
	}
	r.Log = deref(in.Log)
	return r
}

func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func intOr0(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func checkPorts(fe *fieldErrors, prefix string, proto Protocol, from, to int) {
	bad := false
	if from < 0 || from > 65535 {
		fe.add(prefix+"dest_port_from", "constraint", "a port is from 1 to 65535 (got %d)", from)
		bad = true
	}
	if to < 0 || to > 65535 {
		fe.add(prefix+"dest_port_to", "constraint", "a port is from 1 to 65535 (got %d)", to)
		bad = true
	}
	if bad {
		return
	}
	if (from != 0 || to != 0) && !proto.HasPorts() {
		field := "dest_port_from"
		if from == 0 {
			field = "dest_port_to"
		}
		fe.add(prefix+field, "constraint", "ports apply to TCP and UDP only, not %s", proto)
		return
	}
	if to != 0 && from == 0 {
		fe.add(prefix+"dest_port_from", "required", "a port range needs its first port")
		return
	}
	if to != 0 && to < from {
		fe.add(prefix+"dest_port_to", "constraint", "must not be below dest_port_from (%d > %d)", from, to)
	}
}

// normalisePorts keeps a single port as from alone, as Scaleway answers.
func normalisePorts(from, to int) (uint16, uint16) {
	if from <= 0 || from > 65535 {
		return 0, 0
	}
	if to == from || to <= 0 || to > 65535 {
		return uint16(from), 0
	}
	return uint16(from), uint16(to)
}

// ruleValues are a rule's values in the order of ruleColumns.
func ruleValues(r Rule) []any {
	return []any{r.ID, r.GroupID, r.Position, r.Direction, r.Protocol, r.Action, prefixText(r.IPRange), prefixText(r.DestIPRange),
		int(r.DestPortFrom), int(r.DestPortTo), r.Description, r.IPSetID, r.RemoteGroupID, boolInt(r.Log)}
}

var ruleParams = "(" + placeholders(strings.Count(ruleColumns, ",")+1) + ")"

func insertRule(ctx context.Context, tx *txn, r Rule) error {
	if err := checkRemote(ctx, tx, r); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO rules (`+ruleColumns+`) VALUES `+ruleParams, ruleValues(r)...)
	return err
}

// insertRules inserts rules with multi-row statements: a set-all of 100
// rules is two statements instead of 100.
func insertRules(ctx context.Context, tx *txn, rules []Rule) error {
	const perStatement = 50 // 700 parameters
	for _, r := range rules {
		if err := checkRemote(ctx, tx, r); err != nil {
			return err
		}
	}
	for len(rules) > 0 {
		chunk := rules[:min(len(rules), perStatement)]
		rules = rules[len(chunk):]
		values := strings.TrimSuffix(strings.Repeat(ruleParams+", ", len(chunk)), ", ")
		args := make([]any, 0, 14*len(chunk))
		for _, r := range chunk {
			args = append(args, ruleValues(r)...)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO rules (`+ruleColumns+`) VALUES `+values, args...); err != nil {
			return err
		}
	}
	return nil
}

func updateRule(ctx context.Context, tx *txn, r Rule) error {
	if err := checkRemote(ctx, tx, r); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE rules SET position = ?, direction = ?, protocol = ?, action = ?, ip_range = ?,
		dest_ip_range = ?, dest_port_from = ?, dest_port_to = ?, description = ?, ip_set_id = ?, remote_security_group_id = ?,
		log = ? WHERE id = ?`,
		r.Position, r.Direction, r.Protocol, r.Action, prefixText(r.IPRange), prefixText(r.DestIPRange),
		int(r.DestPortFrom), int(r.DestPortTo), r.Description, r.IPSetID, r.RemoteGroupID, boolInt(r.Log), r.ID)
	return err
}

// checkRemote refuses a rule that names an IP set or a group that is not
// of its group's organization and zone. Every rule written passes here
// (create, update, set-all, text, drafts, reverts), so that no path can
// point a rule at another organization's addresses; the answer is the
// same for another organization's object as for none.
func checkRemote(ctx context.Context, tx *txn, r Rule) error {
	var field, id, q string
	switch {
	case r.IPSetID != "":
		field, id = "ip_set_id", r.IPSetID
		q = `SELECT count(*) FROM ip_sets s JOIN security_groups g ON g.id = ?
			WHERE s.id = ? AND s.organization_id = g.organization_id AND s.zone = g.zone`
	case r.RemoteGroupID != "":
		field, id = "remote_security_group_id", r.RemoteGroupID
		q = `SELECT count(*) FROM security_groups s JOIN security_groups g ON g.id = ?
			WHERE s.id = ? AND s.organization_id = g.organization_id AND s.zone = g.zone`
	default:
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, q, r.GroupID, id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		what := map[string]string{"ip_set_id": "IP set", "remote_security_group_id": "security group"}[field]
		return invalid(field, "constraint", "no %s %s in this organization and zone", what, id)
	}
	return nil
}

func prefixText(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// renumber writes positions 1..N in the order of ids, touching only the
// rules whose position changes.
func renumber(ctx context.Context, tx *txn, rules []Rule) error {
	for i := range rules {
		if rules[i].Position == i+1 {
			continue
		}
		rules[i].Position = i + 1
		if _, err := tx.ExecContext(ctx, `UPDATE rules SET position = ? WHERE id = ?`, i+1, rules[i].ID); err != nil {
			return err
		}
	}
	return nil
}

// insertAt places r at position pos (1-based; 0 or past the end appends).
func insertAt(rules []Rule, r Rule, pos int) []Rule {
	if pos <= 0 || pos > len(rules) {
		return append(rules, r)
	}
	rules = append(rules, Rule{})
	copy(rules[pos:], rules[pos-1:])
	rules[pos-1] = r
	return rules
}

// place puts r at position pos (1-based; 0 or past the end appends) among
// the group's other rules, closes the gaps, and returns r's position.
func place(ctx context.Context, tx *txn, others []Rule, r Rule, pos int) (int, error) {
	rules := insertAt(others, r, pos)
	if err := renumber(ctx, tx, rules); err != nil {
		return 0, err
	}
	for _, x := range rules {
		if x.ID == r.ID {
			return x.Position, nil
		}
	}
	return 0, fmt.Errorf("rule %s lost while placing it", r.ID)
}

// rulesChanged records a change to a group's rules and marks the group
// changed at gen.
func (db *DB) rulesChanged(ctx context.Context, tx *txn, gen int64, c change) error {
	if err := db.record(ctx, tx, gen, c); err != nil {
		return err
	}
	return db.touchGroup(ctx, tx, gen, c.group)
}

// CreateRule adds a rule to a group at its position, shifting the rules
// after it.
func (db *DB) CreateRule(ctx context.Context, orgID, zone, groupID string, in RuleInput) (Rule, error) {
	if err := db.checkZone(zone); err != nil {
		return Rule{}, err
	}
	var fe fieldErrors
	r := buildRule(&fe, "", in)
	if err := fe.err(); err != nil {
		return Rule{}, err
	}
	r.ID, r.GroupID = uuid.NewString(), groupID
	err := db.change(ctx, func(tx *txn, gen int64) error {
		if _, err := findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		rules, err := findRules(ctx, tx, groupID)
		if err != nil {
			return err
		}
		if len(rules) >= db.MaxRules {
			return invalid("rules", "constraint", "a group holds at most %d rules", db.MaxRules)
		}
		r.Position = 0 // written by place
		if err := insertRule(ctx, tx, r); err != nil {
			return err
		}
		if r.Position, err = place(ctx, tx, rules, r, in.Position); err != nil {
			return err
		}
		return db.rulesChanged(ctx, tx, gen, change{org: orgID, zone: zone, group: groupID, resource: ResourceRule, id: r.ID, action: "create", after: r})
	})
	if err != nil {
		return Rule{}, fmt.Errorf("create rule in group %s: %w", groupID, err)
	}
	return r, nil
}

// UpdateRule changes the fields of a rule that patch sets; a new position
// moves the rule and shifts the others.
func (db *DB) UpdateRule(ctx context.Context, orgID, zone, groupID, ruleID string, p RulePatch) (Rule, error) {
	if err := db.checkZone(zone); err != nil {
		return Rule{}, err
	}
	var r Rule
	err := db.change(ctx, func(tx *txn, gen int64) error {
		if _, err := findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		old, err := findRule(ctx, tx, groupID, ruleID)
		if err != nil {
			return err
		}
		in := RuleInput{Direction: old.Direction, Protocol: old.Protocol, Action: old.Action, IPRange: prefixText(old.IPRange)}
		in.keepStored(old)
		p.remoteInto(&in)
		from, to := int(old.DestPortFrom), int(old.DestPortTo)
		if p.Direction != nil {
			in.Direction = *p.Direction
		}
		if p.Action != nil {
			in.Action = *p.Action
		}
		if p.DestIPRange != nil {
			in.DestIPRange = p.DestIPRange
		}
		if p.Description != nil {
			in.Description = p.Description
		}
		if p.Log != nil {
			in.Log = p.Log
		}
		if p.DestPortFrom != nil {
			from = *p.DestPortFrom
			if from == 0 {
				to = 0 // unsetting the first port unsets the range
			}
		}
		if p.DestPortTo != nil {
			to = *p.DestPortTo
		}
		if p.Protocol != nil {
			in.Protocol = *p.Protocol
			if !in.Protocol.HasPorts() && p.DestPortFrom == nil && p.DestPortTo == nil {
				from, to = 0, 0 // as at Scaleway: ICMP and ANY carry no ports
			}
		}
		in.DestPortFrom, in.DestPortTo = &from, &to
		var fe fieldErrors
		r = buildRule(&fe, "", in)
		if p.Position != nil && *p.Position < 0 {
			fe.add("position", "constraint", "must be 0 (keep) or a position from 1")
		}
		if err := fe.err(); err != nil {
			return err
		}
		r.ID, r.GroupID, r.Position = old.ID, groupID, old.Position
		if err := updateRule(ctx, tx, r); err != nil {
			return err
		}
		if p.Position != nil && *p.Position > 0 && *p.Position != old.Position {
			rules, err := findRules(ctx, tx, groupID)
			if err != nil {
				return err
			}
			rest := make([]Rule, 0, len(rules))
			for _, x := range rules {
				if x.ID != r.ID {
					rest = append(rest, x)
				}
			}
			if r.Position, err = place(ctx, tx, rest, r, *p.Position); err != nil {
				return err
			}
		}
		return db.rulesChanged(ctx, tx, gen, change{org: orgID, zone: zone, group: groupID, resource: ResourceRule, id: r.ID, action: "update", before: old, after: r})
	})
	if err != nil {
		return Rule{}, fmt.Errorf("update rule %s: %w", ruleID, err)
	}
	return r, nil
}

// remoteInto applies the patch's remote side to in: an IP set or a group
// given replaces the stored remote side, whatever its kind; a range does
// only where the rule has no other (or the patch unsets it), so that a
// client that does not know the other kinds cannot turn such a rule into a
// range without saying so.
func (p RulePatch) remoteInto(in *RuleInput) {
	empty := ""
	switch {
	case deref(p.IPSetID) != "":
		in.IPRange, in.RemoteGroupID = "", &empty
	case deref(p.RemoteGroupID) != "":
		in.IPRange, in.IPSetID = "", &empty
	}
	if p.IPRange != nil {
		in.IPRange = *p.IPRange
	}
	if p.IPSetID != nil {
		in.IPSetID = p.IPSetID
	}
	if p.RemoteGroupID != nil {
		in.RemoteGroupID = p.RemoteGroupID
	}
}

// MoveRule moves a rule to position pos (1..N) within its group, shifting
// the rules between.
func (db *DB) MoveRule(ctx context.Context, orgID, zone, groupID, ruleID string, pos int) (Rule, error) {
	return db.moveRule(ctx, orgID, zone, groupID, ruleID, func(rules []Rule, i int) (int, error) {
		if pos < 1 || pos > len(rules) {
			return 0, invalid("position", "constraint", "a position is a number from 1 to %d", len(rules))
		}
		return pos, nil
	})
}

// MoveRuleStep moves a rule to the place of the previous rule of its
// direction (step -1) or of the next one (+1): inbound and outbound rules
// share positions, and a person reorders each direction on its own. At
// either end nothing changes.
func (db *DB) MoveRuleStep(ctx context.Context, orgID, zone, groupID, ruleID string, step int) (Rule, error) {
	if step != -1 && step != 1 {
		return Rule{}, invalid("direction", "format", "move a rule up or down")
	}
	return db.moveRule(ctx, orgID, zone, groupID, ruleID, func(rules []Rule, i int) (int, error) {
		for j := i + step; j >= 0 && j < len(rules); j += step {
			if rules[j].Direction == rules[i].Direction {
				return rules[j].Position, nil
			}
		}
		return rules[i].Position, nil
	})
}

// moveRule moves a rule to the position target chooses among the group's
// rules (in position order; i is the rule's index). A move to where the
// rule already is writes nothing.
func (db *DB) moveRule(ctx context.Context, orgID, zone, groupID, ruleID string, target func(rules []Rule, i int) (int, error)) (Rule, error) {
	if err := db.checkZone(zone); err != nil {
		return Rule{}, err
	}
	var r Rule
	err := db.change(ctx, func(tx *txn, gen int64) error {
		if _, err := findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		rules, err := findRules(ctx, tx, groupID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(rules, func(x Rule) bool { return x.ID == ruleID })
		if i < 0 {
			return notFound(ResourceRule, ruleID)
		}
		r = rules[i]
		pos, err := target(rules, i)
		if err != nil {
			return err
		}
		if pos == r.Position {
			return errNoChange
		}
		before := r
		if r.Position, err = place(ctx, tx, slices.Delete(slices.Clone(rules), i, i+1), r, pos); err != nil {
			return err
		}
		return db.rulesChanged(ctx, tx, gen, change{org: orgID, zone: zone, group: groupID, resource: ResourceRule, id: r.ID, action: "update", before: before, after: r})
	})
	if err != nil {
		return Rule{}, fmt.Errorf("move rule %s: %w", ruleID, err)
	}
	return r, nil
}

// DeleteRule removes a rule and closes the gap it leaves.
func (db *DB) DeleteRule(ctx context.Context, orgID, zone, groupID, ruleID string) error {
	if err := db.checkZone(zone); err != nil {
		return err
	}
	err := db.change(ctx, func(tx *txn, gen int64) error {
		if _, err := findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		old, err := findRule(ctx, tx, groupID, ruleID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM rules WHERE id = ?`, ruleID); err != nil {
			return err
		}
		rules, err := findRules(ctx, tx, groupID)
		if err != nil {
			return err
		}
		if err := renumber(ctx, tx, rules); err != nil {
			return err
		}
		return db.rulesChanged(ctx, tx, gen, change{org: orgID, zone: zone, group: groupID, resource: ResourceRule, id: ruleID, action: "delete", before: old})
	})
	if err != nil {
		return fmt.Errorf("delete rule %s: %w", ruleID, err)
	}
	return nil
}

// SetRules replaces the editable rules of a group: elements with an ID
// update that rule, elements without one create a rule, and rules left out
// are deleted. Elements that are the system's (NotEditable, or one of the
// SMTP rules) are ignored, as Scaleway ignores them. Positions order the
// result (0 keeps the array's order); the answer is the whole resulting
// list as ListRules gives it.
func (db *DB) SetRules(ctx context.Context, orgID, zone, groupID string, ins []RuleInput) ([]Rule, error) {
	if err := db.checkZone(zone); err != nil {
		return nil, err
	}
	var result []Rule
	var g Group
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		if g, err = findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		existing, err := findRules(ctx, tx, groupID)
		if err != nil {
			return err
		}
		// Elements keep what they leave out of Rampart's fields: they are
		// checked with the values the rules will have.
		byID := make(map[string]Rule, len(existing))
		for _, r := range existing {
			byID[r.ID] = r
		}
		// Rules matching an IP set or a group stay as they are, where
		// they are, unless an element speaks of their kinds: a client
		// that does not know them (the SDK, Terraform) sends back what it
		// was shown, or leaves them out, and must neither erase nor
		// widen them.
		ins = slices.Clone(ins)
		taken := map[string]bool{}
		for i := range ins {
			old, ok := byID[ins[i].ID]
			if !ok || ins[i].ID == "" {
				continue
			}
			if old.Remote() && !ins[i].knowsRemotes() {
				ins[i].NotEditable = true
				continue
			}
			ins[i].keepStored(old)
			taken[old.ID] = !ins[i].NotEditable
		}
		var pinned []Rule
		for _, r := range existing {
			if r.Remote() && !taken[r.ID] {
				pinned = append(pinned, r)
			}
		}
		items, err := db.setAllItems(groupID, ins)
		if err != nil {
			return err
		}
		if n := len(items) + len(pinned); n > db.MaxRules {
			return invalid("rules", "constraint", "a group holds at most %d rules (got %d, with %d that match an IP set or a group)", db.MaxRules, n, len(pinned))
		}
		if result, err = replaceRules(ctx, tx, groupID, existing, items, pinned); err != nil {
			return err
		}
		if slices.Equal(existing, result) {
			return errNoChange // nothing written: no version, no generation
		}
		return db.rulesChanged(ctx, tx, gen, change{org: orgID, zone: zone, group: groupID, resource: ResourceRule, id: groupID, action: "set_rules", before: existing, after: result})
	})
	if err != nil {
		return nil, fmt.Errorf("set rules of group %s: %w", groupID, err)
	}
	if !g.SMTPEnabled {
		result = append(SMTPRules(g.ID), result...)
	}
	return result, nil
}

// setAllItem is one rule of a set-all, checked, with the request index
// its errors name.
type setAllItem struct {
	rule  Rule
	index int
}

// setAllItems checks the elements of a set-all and returns the editable
// ones in the order of their positions (0 keeps the array's order).
func (db *DB) setAllItems(groupID string, ins []RuleInput) ([]setAllItem, error) {
	smtp := map[string]bool{}
	for _, r := range SMTPRules(groupID) {
		smtp[r.ID] = true
	}
	var fe fieldErrors
	items := make([]setAllItem, 0, len(ins))
	keys := make([]int, 0, len(ins))
	key := 0
	seen := map[string]bool{}
	for i, in := range ins {
		if in.NotEditable || smtp[in.ID] {
			continue
		}
		prefix := fmt.Sprintf("rules[%d].", i)
		r := buildRule(&fe, prefix, in)
		r.ID = in.ID
		if r.ID != "" {
			if seen[r.ID] {
				fe.add(prefix+"id", "constraint", "rule %s appears twice", r.ID)
			}
			seen[r.ID] = true
		}
		if in.Position > 0 {
			key = in.Position
		}
		items = append(items, setAllItem{rule: r, index: i})
		keys = append(keys, key)
	}
	if len(items) > db.MaxRules {
		fe.add("rules", "constraint", "a group holds at most %d rules (got %d)", db.MaxRules, len(items))
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return keys[order[a]] < keys[order[b]] })
	sorted := make([]setAllItem, len(items))
	for i, o := range order {
		sorted[i] = items[o]
	}
	return sorted, nil
}

// replaceRules makes the group's rules be items, in their order, with as
// few statements as it can: the rules left out deleted in one, those that
// did not change left alone, the new ones inserted a few dozen at a time.
// It returns the resulting rules.
//
// The pinned rules keep their positions where the result is long enough
// (else they come last, in their order), and items fill the others.
func replaceRules(ctx context.Context, tx *txn, groupID string, existing []Rule, items []setAllItem, pinned []Rule) ([]Rule, error) {
	old := make(map[string]Rule, len(existing))
	for _, r := range existing {
		old[r.ID] = r
	}
	var fe fieldErrors
	kept := map[string]bool{}
	for _, r := range pinned {
		kept[r.ID] = true
	}
	for _, it := range items {
		if it.rule.ID == "" {
			continue
		}
		if _, ok := old[it.rule.ID]; !ok {
			fe.add(fmt.Sprintf("rules[%d].id", it.index), "constraint", "rule %s is not a rule of this group", it.rule.ID)
		}
		kept[it.rule.ID] = true
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	var gone []any
	for _, r := range existing {
		if !kept[r.ID] {
			gone = append(gone, r.ID)
		}
	}
	if len(gone) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM rules WHERE id IN (`+placeholders(len(gone))+`)`, gone...); err != nil {
			return nil, err
		}
	}
	result := make([]Rule, 0, len(items)+len(pinned))
	var added []Rule
	for len(items) > 0 || len(pinned) > 0 {
		var r Rule
		if len(pinned) > 0 && (len(items) == 0 || pinned[0].Position <= len(result)+1) {
			r, pinned = pinned[0], pinned[1:]
		} else {
			r, items = items[0].rule, items[1:]
		}
		r.GroupID, r.Position = groupID, len(result)+1
		switch {
		case r.ID == "":
			r.ID = uuid.NewString()
			added = append(added, r)
		case old[r.ID] != r:
			if err := updateRule(ctx, tx, r); err != nil {
				return nil, err
			}
		}
		result = append(result, r)
	}
	return result, insertRules(ctx, tx, added)
}

// validID reports whether s has the form of the IDs the store gives
// (a UUID in its 36-character form).
func validID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}
