package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Rules as text: a group's editable rules, one per line in position order,
// inbound and outbound together (they share positions):
//
//	inbound accept TCP port 22 from 0.0.0.0/0 # SSH
//	inbound accept TCP ports 8000-8080 from 10.0.0.0/8 to 10.1.2.3 # app servers
//	inbound accept ICMP from ::/0
//	outbound drop ANY to 192.0.2.0/24 log
//
// A line is a direction, an action, a protocol, the destination ports of
// TCP and UDP ("port N" or "ports N-M"; none: every port), and the remote
// side (ip_range, or set:ID for an IP set, group:ID for the servers of a
// group): "from" it for inbound rules, "to" it for outbound ones.
// An optional "to" (inbound) or "from" (outbound) range narrows the
// server's own side (dest_ip_range). The word "log" makes the rule log the
// packets it decides. What follows "#" is the rule's description. Blank
// lines and lines that are only a comment are ignored.
// Keywords and protocols are read in any case; FormatRules writes them as
// above, and what it writes reads back to the same rules and the same text,
// byte for byte.

// FormatRule writes one rule as a line of the text form, without its end
// of line.
func FormatRule(r Rule) string {
	parts := []string{string(r.Direction), string(r.Action), string(r.Protocol)}
	switch {
	case r.DestPortFrom == 0:
	case r.DestPortTo == 0 || r.DestPortTo == r.DestPortFrom:
		parts = append(parts, "port", strconv.Itoa(int(r.DestPortFrom)))
	default:
		parts = append(parts, "ports", fmt.Sprintf("%d-%d", r.DestPortFrom, r.DestPortTo))
	}
	remote, local := "from", "to"
	if r.Direction == Outbound {
		remote, local = "to", "from"
	}
	parts = append(parts, remote, formatRemote(r))
	if r.DestIPRange.IsValid() {
		parts = append(parts, local, FormatIPRange(r.DestIPRange))
	}
	if r.Log {
		parts = append(parts, "log")
	}
	line := strings.Join(parts, " ")
	if r.Description != "" {
		line += " # " + r.Description
	}
	return line
}

// The remote side of a rule that matches an IP set or a group is written
// "set:ID" or "group:ID".
const (
	setPrefix   = "set:"
	groupPrefix = "group:"
)

func formatRemote(r Rule) string {
	switch {
	case r.IPSetID != "":
		return setPrefix + r.IPSetID
	case r.RemoteGroupID != "":
		return groupPrefix + r.RemoteGroupID
	}
	return FormatIPRange(r.IPRange)
}

// FormatRules writes rules (editable, in position order) as the text form:
// one line each, each ended by "\n".
func FormatRules(rules []Rule) string {
	var b strings.Builder
	for _, r := range rules {
		if !r.Editable {
			continue
		}
		b.WriteString(FormatRule(r))
		b.WriteByte('\n')
	}
	return b.String()
}

// RulesExample is a line of the text form, for messages and hints.
const RulesExample = "inbound accept TCP port 22 from 0.0.0.0/0 # SSH"

// ParseRulesText reads the text form into the rules it describes, in
// order, checked as a set-all checks them; a refusal names each bad line
// ("line 3") with what is wrong with it.
func (db *DB) ParseRulesText(text string) ([]Rule, error) {
	var fe fieldErrors
	var rules []Rule
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		in, ok := parseRuleLine(&fe, n, strings.TrimSuffix(line, "\r"))
		if !ok {
			continue
		}
		var lfe fieldErrors
		r := buildRule(&lfe, "", in)
		for _, e := range lfe {
			fe.add(lineField(n), e.Reason, "%s: %s", e.Field, e.Message)
		}
		rules = append(rules, r)
		if len(fe) >= 100 {
			fe.add("rules", "constraint", "too many errors: the rest of the text was not read")
			break
		}
	}
	if len(rules) > db.MaxRules {
		fe.add("rules", "constraint", "a group holds at most %d rules (got %d)", db.MaxRules, len(rules))
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	for i := range rules {
		rules[i].Position = i + 1
	}
	return rules, nil
}

func lineField(n int) string { return "line " + strconv.Itoa(n) }

// parseRuleLine reads one line: ok is false for a blank or comment line,
// or one with errors (added to fe).
func parseRuleLine(fe *fieldErrors, n int, line string) (RuleInput, bool) {
	rule, comment, hasComment := strings.Cut(line, "#")
	toks := strings.Fields(rule)
	if len(toks) == 0 {
		return RuleInput{}, false
	}
	field := lineField(n)
	bad := func(format string, args ...any) (RuleInput, bool) {
		fe.add(field, "format", format, args...)
		return RuleInput{}, false
	}
	if len(toks) < 3 {
		return bad("a rule is a direction, an action, a protocol and a range, such as %q", RulesExample)
	}
	in := RuleInput{
		Direction: Direction(strings.ToLower(toks[0])),
		Action:    Policy(strings.ToLower(toks[1])),
		Protocol:  Protocol(strings.ToUpper(toks[2])),
	}
	desc := ""
	if hasComment {
		desc = strings.TrimSpace(comment)
	}
	in.Description = &desc
	remote, local := "from", "to"
	if in.Direction == Outbound {
		remote, local = "to", "from"
	}
	seen := map[string]bool{}
	dest := ""
	logged := false
	in.DestIPRange, in.Log = &dest, &logged
	for i := 3; i < len(toks); i += 2 {
		kw := strings.ToLower(toks[i])
		if kw == "ports" {
			kw = "port"
		}
		if kw != "port" && kw != "from" && kw != "to" && kw != "log" {
			return bad("unexpected %q after the protocol: a rule reads like %q", toks[i], RulesExample)
		}
		if seen[kw] {
			return bad("%q appears twice", kw)
		}
		seen[kw] = true
		if kw == "log" {
			// A word alone, with no value after it.
			logged = true
			i--
			continue
		}
		if i+1 >= len(toks) {
			return bad("%q needs a value", toks[i])
		}
		val := toks[i+1]
		switch kw {
		case "port":
			fromText, toText, isRange := strings.Cut(val, "-")
			from, err := strconv.Atoi(fromText)
			if err != nil {
				return bad("dest_port_from: a port is a whole number from 1 to 65535 (got %q)", fromText)
			}
			to := 0
			if isRange {
				if to, err = strconv.Atoi(toText); err != nil {
					return bad("dest_port_to: a port is a whole number from 1 to 65535 (got %q)", toText)
				}
			}
			in.DestPortFrom, in.DestPortTo = &from, &to
		case remote:
			switch lower := strings.ToLower(val); {
			case strings.HasPrefix(lower, setPrefix):
				id := lower[len(setPrefix):]
				in.IPSetID = &id
			case strings.HasPrefix(lower, groupPrefix):
				id := lower[len(groupPrefix):]
				in.RemoteGroupID = &id
			default:
				in.IPRange = val
			}
		case local:
			dest = val
		}
	}
	if !seen[remote] && (in.Direction == Inbound || in.Direction == Outbound) {
		return bad("ip_range: the rule needs its remote side: %q, %q or %q", remote+" 0.0.0.0/0", remote+" "+setPrefix+"ID", remote+" "+groupPrefix+"ID")
	}
	return in, true
}

// matchRules gives each rule of next the ID of a rule of existing that is
// the same in every field (position aside), each existing rule once: a
// line left as it was keeps its rule, and its counters. The others get
// newID().
func matchRules(next, existing []Rule, newID func() string) {
	type key struct {
		dir      Direction
		proto    Protocol
		action   Policy
		ipRange  string
		dest     string
		from, to uint16
		desc     string
		remote   string
		log      bool
	}
	keyOf := func(r Rule) key {
		return key{r.Direction, r.Protocol, r.Action, prefixText(r.IPRange), prefixText(r.DestIPRange), r.DestPortFrom, r.DestPortTo, r.Description,
			r.IPSetID + "/" + r.RemoteGroupID, r.Log}
	}
	free := map[key][]string{}
	for _, r := range existing {
		k := keyOf(r)
		free[k] = append(free[k], r.ID)
	}
	for i := range next {
		k := keyOf(next[i])
		if ids := free[k]; len(ids) > 0 {
			next[i].ID, free[k] = ids[0], ids[1:]
		} else {
			next[i].ID = newID()
		}
	}
}

// SetRulesText replaces the editable rules of a group with those of the
// text form, in one change (see ParseRulesText); unchanged lines keep
// their rules. The answer is the whole resulting list as ListRules gives
// it.
func (db *DB) SetRulesText(ctx context.Context, orgID, zone, groupID, text string) ([]Rule, error) {
	if err := db.checkZone(zone); err != nil {
		return nil, err
	}
	parsed, err := db.ParseRulesText(text)
	if err != nil {
		return nil, err
	}
	var result []Rule
	var g Group
	err = db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		if g, err = findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		existing, err := findRules(ctx, tx, groupID)
		if err != nil {
			return err
		}
		result = make([]Rule, len(parsed))
		copy(result, parsed)
		matchRules(result, existing, uuid.NewString)
		for i := range result {
			result[i].GroupID = groupID
		}
		if slices.Equal(existing, result) {
			return errNoChange
		}
		if err := restoreRules(ctx, tx, groupID, existing, result); err != nil {
			return err
		}
		return db.rulesChanged(ctx, tx, gen, change{org: orgID, zone: zone, group: groupID, resource: ResourceRule, id: groupID,
			action: "set_rules", before: existing, after: result})
	})
	if err != nil {
		return nil, fmt.Errorf("set rules of group %s: %w", groupID, err)
	}
	if !g.SMTPEnabled {
		result = append(SMTPRules(g.ID), result...)
	}
	return result, nil
}
