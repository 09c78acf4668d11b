// Package packetlog reads the packets that the enforcer's rules log
// (NFLOG, over netlink) and turns each into an Entry that names the
// group, the rule (or default policy, SMTP row) and the verdict that
// decided it.
//
// The kernel decides what is logged: a rule or a default policy that logs
// sends its packets to one NFLOG group, each with a prefix naming its
// group, direction, rule tag and verdict (enforcer.LogPrefix), within its
// group's rate limit. The Reader only parses what arrives, and delivers
// entries in batches. Nothing is lost without being counted: the kernel
// counts what each rule decided (the rules' counters) and what the limit
// refused (enforcer.TagLogLimited); the Reader counts the entries it
// received and, from the gaps in NFLOG's sequence numbers, those the
// kernel dropped because the socket's buffer was full. For the rules that
// log:
//
//	their counters = Received + log_limited + BufferDrops
//
// up to the entries the kernel still holds in its queue (flushed within
// Config.FlushTimeout) and those dropped after the last one received
// (known at the next one).
package packetlog

import (
	"net/netip"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/explain"
	"github.com/rampart-fw/rampart/store"
)

// Entry is one logged packet.
type Entry struct {
	Time            time.Time       `json:"time"`
	Direction       store.Direction `json:"direction"`
	Protocol        string          `json:"protocol"`
	Source          netip.Addr      `json:"source"`
	SourcePort      uint16          `json:"source_port"`
	Destination     netip.Addr      `json:"destination"`
	DestinationPort uint16          `json:"destination_port"`
	Verdict         store.Policy    `json:"verdict"`
	GroupID         string          `json:"group_id"`
	// DecidedBy names what decided, as the packet tester names it: a rule
	// (its ID and position), the default policy, an SMTP row or the
	// stateful exception.
	DecidedBy explain.RuleRef `json:"decided_by"`
	// InIndex and OutIndex are the interfaces the packet came in on and
	// was to leave by (0: none), in the reader's network namespace: the
	// server's interface is OutIndex inbound and InIndex outbound.
	InIndex  uint32 `json:"-"`
	OutIndex uint32 `json:"-"`
}

// Stats are the reader's running totals since it started.
type Stats struct {
	// Received counts the log messages read from the kernel, each one a
	// packet that a rule logged (Unparsed included).
	Received uint64
	// BufferDrops counts the messages the kernel built but could not
	// deliver because the socket's receive buffer was full: the gaps in
	// NFLOG's sequence numbers.
	BufferDrops uint64
	// Overruns counts the times the socket reported that it overflowed
	// (ENOBUFS); the messages lost are in BufferDrops.
	Overruns uint64
	// Unparsed counts the messages received that were not made into an
	// entry: a prefix not Rampart's (another program logging to the same
	// group) or a packet whose headers could not be read.
	Unparsed uint64
}

// Index names the groups and rules that prefixes refer to, with the rules'
// positions, from a snapshot of the store. An Index is immutable.
type Index struct {
	groups map[string]string                     // prefix's group part -> group ID
	rules  map[string]map[string]explain.RuleRef // group ID -> prefix's tag part -> rule
}

// NewIndex indexes the groups and rules of snap (SMTP rows included).
func NewIndex(snap store.Snapshot) *Index {
	ix := &Index{groups: make(map[string]string, len(snap.Groups)), rules: make(map[string]map[string]explain.RuleRef, len(snap.Groups))}
	for _, g := range snap.Groups {
		ix.groups[enforcer.LogPrefixGroup(g.ID)] = g.ID
		refs := map[string]explain.RuleRef{}
		for _, r := range store.SMTPRules(g.ID) {
			refs[enforcer.LogPrefixTag(r.ID)] = explain.RuleRef{Kind: explain.KindSMTP, RuleID: r.ID, Position: r.Position}
		}
		for _, r := range snap.Rules[g.ID] {
			refs[enforcer.LogPrefixTag(r.ID)] = explain.RuleRef{Kind: explain.KindRule, RuleID: r.ID, Position: r.Position}
		}
		ix.rules[g.ID] = refs
	}
	return ix
}

// resolve returns the group and what decided from a prefix. Without an
// index entry (a rule newer than the index), the prefix's parts are taken
// as they are: they are the IDs themselves unless an ID had characters a
// prefix cannot hold, and the position is unknown (0).
func (ix *Index) resolve(p enforcer.LogPrefix) (string, explain.RuleRef) {
	group := p.Group
	if ix != nil {
		if id, ok := ix.groups[p.Group]; ok {
			group = id
		}
	}
	switch p.Tag {
	case enforcer.TagDefaultIn, enforcer.TagDefaultOut:
		return group, explain.RuleRef{Kind: explain.KindDefaultPolicy}
	case enforcer.TagEstablishedIn, enforcer.TagEstablishedOut:
		return group, explain.RuleRef{Kind: explain.KindStateful}
	case enforcer.TagCompileError:
		return group, explain.RuleRef{Kind: explain.KindCompileError}
	}
	if ix != nil {
		if ref, ok := ix.rules[group][p.Tag]; ok {
			return group, ref
		}
	}
	return group, explain.RuleRef{Kind: explain.KindRule, RuleID: p.Tag}
}

// entry makes the entry of one logged packet: its prefix and its bytes
// from the network header on.
func (ix *Index) entry(prefix string, packet []byte, at time.Time) (Entry, error) {
	p, err := enforcer.ParseLogPrefix(prefix)
	if err != nil {
		return Entry{}, err
	}
	h, err := ParseHeader(packet)
	if err != nil {
		return Entry{}, err
	}
	group, ref := ix.resolve(p)
	return Entry{
		Time: at, Direction: p.Direction, Protocol: h.Protocol,
		Source: h.Source, SourcePort: h.SourcePort, Destination: h.Destination, DestinationPort: h.DestinationPort,
		Verdict: p.Verdict, GroupID: group, DecidedBy: ref,
	}, nil
}
