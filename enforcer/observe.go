package enforcer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/rampart-fw/rampart/store"
)

// Observation: named counters that outlive rewrites of their chains, and a
// packet log, through NFLOG, whose entries name the group, the rule and
// the verdict. This file holds the names and the log's settings; it is
// pure, like the rest of compile.

// Defaults of LogConfig.
const (
	// DefaultLogGroup is the NFLOG group logged packets are sent to.
	DefaultLogGroup uint16 = 2910
	// DefaultLogRate and DefaultLogBurst bound each group's log: at most
	// 50 entries a second after a burst of 100. A flood then costs user
	// space at most 50 entries a second per group, while the kernel still
	// counts every packet (the rules' counters, and TagLogLimited for
	// those the limit refused).
	DefaultLogRate  uint64 = 50
	DefaultLogBurst uint32 = 100
)

// LogConfig says where logged packets go and how fast. The zero value
// means the defaults; group 0 can therefore not be chosen.
type LogConfig struct {
	Group uint16 // NFLOG group; 0: DefaultLogGroup
	// Limit is each group's rate limit, unless Groups names the group.
	Limit LogLimit
	// Groups overrides Limit for some groups, by group ID.
	Groups map[string]LogLimit
}

// LogLimit is the kernel's rate limit of one group's log: Rate entries a
// second, after a burst of Burst. Zero fields take the defaults.
type LogLimit struct {
	Rate  uint64
	Burst uint32
}

func (c LogConfig) nflogGroup() uint16 {
	if c.Group == 0 {
		return DefaultLogGroup
	}
	return c.Group
}

// limitFor returns the limit of a group, defaults applied.
func (c LogConfig) limitFor(groupID string) LogLimit {
	l, ok := c.Groups[groupID]
	if !ok {
		l = c.Limit
	}
	if l.Rate == 0 {
		l.Rate = DefaultLogRate
	}
	if l.Burst == 0 {
		l.Burst = DefaultLogBurst
	}
	return l
}

// fixedTags are the tags of the rules the compiler adds to every group.
var fixedTags = []string{TagDefaultIn, TagDefaultOut, TagEstablishedIn, TagEstablishedOut, TagCompileError}

// objectTag turns a rule tag into the part of object and chain names that
// names the rule, with only [a-z0-9_] (what nft accepts unquoted) and
// without two tags ever giving the same part: the fixed tags are kept as
// they are (they hold "_", which no other form does), a UUID becomes "u"
// and its 32 digits, a tag of [a-z0-9] "r" and itself, anything else of up
// to 100 bytes "x" and its bytes in hex, and a longer tag "h" and the start
// of its SHA-256. Names thus stay under NFT_OBJ_MAXNAMELEN and
// NFT_CHAIN_MAXNAMELEN (256 with the NUL).
func objectTag(tag string) string {
	var b strings.Builder
	appendObjectTag(&b, tag)
	return b.String()
}

// appendObjectTag writes objectTag(tag) to b; names are built this way,
// with one allocation each, because a group's compilation makes one per
// rule.
func appendObjectTag(b *strings.Builder, tag string) {
	for _, f := range fixedTags {
		if tag == f {
			b.WriteString(tag)
			return
		}
	}
	switch {
	case isUUID(tag):
		b.WriteByte('u')
		for i := 0; i < len(tag); i++ {
			if tag[i] != '-' {
				b.WriteByte(tag[i])
			}
		}
	case tag != "" && len(tag) <= 64 && strings.Trim(tag, "abcdefghijklmnopqrstuvwxyz0123456789") == "":
		b.WriteByte('r')
		b.WriteString(tag)
	case len(tag) <= 100:
		b.WriteByte('x')
		var h [200]byte
		b.Write(hex.AppendEncode(h[:0], []byte(tag)))
	default:
		h := sha256.Sum256([]byte(tag))
		b.WriteByte('h')
		var x [16]byte
		b.Write(hex.AppendEncode(x[:0], h[:8]))
	}
}

// objectName is base + "_" + infix + objectTag(tag), in one allocation.
func objectName(base, infix, tag string) string {
	var b strings.Builder
	b.Grow(len(base) + 1 + len(infix) + 1 + 32 + 8)
	b.WriteString(base)
	b.WriteByte('_')
	b.WriteString(infix)
	appendObjectTag(&b, tag)
	return b.String()
}

// isUUID reports whether s is a UUID in its canonical lower-case form, as
// the store makes them.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// groupBase is the start of every name of a group's chains and objects.
func groupBase(groupID string) string { return "sg_" + chainID(groupID) }

// counterName is the name of the counter object of a group's rule.
func counterName(groupID, tag string) string {
	return objectName(groupBase(groupID), "", tag)
}

// logChainName is the name of the chain through which a logged rule of a
// group decides.
func logChainName(groupID, tag string) string {
	return objectName(groupBase(groupID), "log_", tag)
}

// limitedName is the name of the counter of a group's log entries that
// the limit refused. No objectTag starts with "log".
func limitedName(groupID string) string { return groupBase(groupID) + "_log_limited" }

// limitName is the name of a group's limit object: it holds the settings,
// which the kernel cannot change in an existing limit object.
func limitName(groupID string, l LogLimit) string {
	return fmt.Sprintf("%s_log_%d_%d", groupBase(groupID), l.Rate, l.Burst)
}

// LogPrefixMax is the longest log prefix the kernel takes (NF_LOG_PREFIXLEN
// is 128 with the NUL). Prefixes made here stay within 100.
const LogPrefixMax = 127

// logPrefixStart starts every prefix Rampart logs with.
const logPrefixStart = "rampart:"

// LogPrefix is what the prefix of a logged packet says: the group (its ID,
// or chainID's form of it when the ID is not a short plain word), the
// direction of the chain, the rule tag (or, likewise, its hash) and the
// verdict the kernel applied to the packet.
type LogPrefix struct {
	Group     string
	Direction store.Direction
	Tag       string
	Verdict   store.Policy
}

// String renders p as the kernel gets it:
// "rampart:<group>:<in|out>:<tag>:<accept|drop>".
func (p LogPrefix) String() string {
	dir := "in"
	if p.Direction == store.Outbound {
		dir = "out"
	}
	return logPrefixStart + prefixPart(p.Group, chainID) + ":" + dir + ":" + prefixPart(p.Tag, hashTag) + ":" + string(p.Verdict)
}

// LogPrefixGroup returns how a group ID appears in prefixes, for a reader
// that indexes groups by it.
func LogPrefixGroup(groupID string) string { return prefixPart(groupID, chainID) }

// LogPrefixTag returns how a rule tag appears in prefixes.
func LogPrefixTag(tag string) string { return prefixPart(tag, hashTag) }

func hashTag(tag string) string {
	h := sha256.Sum256([]byte(tag))
	return "h" + hex.EncodeToString(h[:8])
}

// prefixPart keeps an ID of up to 40 characters of [A-Za-z0-9._-] (UUIDs,
// the fixed tags) as it is, and otherwise uses short, which must give
// neither ":" nor a quote.
func prefixPart(id string, short func(string) string) string {
	if id == "" || len(id) > 40 {
		return short(id)
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return short(id)
		}
	}
	return id
}

// ParseLogPrefix reads a prefix made by LogPrefix.String.
func ParseLogPrefix(s string) (LogPrefix, error) {
	rest, ok := strings.CutPrefix(s, logPrefixStart)
	f := strings.Split(rest, ":")
	if !ok || len(f) != 4 || f[0] == "" || f[2] == "" {
		return LogPrefix{}, fmt.Errorf("log prefix %s: not one of Rampart's", strconv.Quote(s))
	}
	p := LogPrefix{Group: f[0], Tag: f[2], Verdict: store.Policy(f[3])}
	switch f[1] {
	case "in":
		p.Direction = store.Inbound
	case "out":
		p.Direction = store.Outbound
	default:
		return LogPrefix{}, fmt.Errorf("log prefix %s: direction %q", strconv.Quote(s), f[1])
	}
	if p.Verdict != store.Accept && p.Verdict != store.Drop {
		return LogPrefix{}, fmt.Errorf("log prefix %s: verdict %q", strconv.Quote(s), f[3])
	}
	return p, nil
}

// logged makes r, of group g in direction dir, log what it decides: r
// goes to a chain of its own, returned, which logs within the group's
// limit and decides.
func logged(r *Rule, groupID string, dir store.Direction, cfg LogConfig) Chain {
	name := logChainName(groupID, r.Tag)
	r.Log = Log{Chain: name}
	verdict := r.Verdict
	prefix := LogPrefix{Group: groupID, Direction: dir, Tag: r.Tag, Verdict: store.Policy(verdict.Kind)}
	return Chain{Name: name, Rules: []Rule{
		{Tag: r.Tag, Log: Log{Limit: limitName(groupID, cfg.limitFor(groupID)), Prefix: prefix.String(), Group: cfg.nflogGroup()}, Verdict: verdict},
		{Tag: TagLogLimited, Counter: limitedName(groupID), Verdict: verdict},
	}}
}
