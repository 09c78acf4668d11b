package views

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// Observation in the console: counters that move while the page is open
// (CountersData, polled every two seconds and copied into the rules' cells
// by console.js), and the packet log (LogSection, whose entries poll
// themselves).

// DefaultRow is the count of something no rule decided.
type DefaultRow struct {
	Tag         string // the counter's tag: default_in, default_out, established_in, established_out
	Label       string
	Packets     uint64
	Bytes       uint64
	LastMatched time.Time
}

// defaultTags are the tags DefaultCounters shows, in order.
var defaultTags = []struct{ tag, label string }{
	{"default_in", "Inbound default policy"},
	{"default_out", "Outbound default policy"},
	{"established_in", "Inbound replies (stateful)"},
	{"established_out", "Outbound replies (stateful)"},
}

// DefaultCounters picks the counters of the default policies and the
// stateful exception from a group's counters, by tag.
func DefaultCounters(counters map[string]store.RuleCounter) []DefaultRow {
	out := make([]DefaultRow, len(defaultTags))
	for i, d := range defaultTags {
		c := counters[d.tag]
		out[i] = DefaultRow{Tag: d.tag, Label: d.label, Packets: c.Packets, Bytes: c.Bytes, LastMatched: c.LastMatched}
	}
	return out
}

// CounterValue is one counter as the live partial sends it.
type CounterValue struct {
	Tag         string // a rule ID, or a tag of DefaultRow
	Packets     uint64
	Bytes       uint64
	LastMatched time.Time
}

// CounterValues lists a group's counters for the live partial: every tag
// the store has, and zeros for those of rules (ids) it has none for.
func CounterValues(counters map[string]store.RuleCounter, ids []string) []CounterValue {
	out := make([]CounterValue, 0, len(ids)+len(defaultTags))
	for _, id := range ids {
		c := counters[id]
		out = append(out, CounterValue{Tag: id, Packets: c.Packets, Bytes: c.Bytes, LastMatched: c.LastMatched})
	}
	for _, d := range defaultTags {
		c := counters[d.tag]
		out = append(out, CounterValue{Tag: d.tag, Packets: c.Packets, Bytes: c.Bytes, LastMatched: c.LastMatched})
	}
	return out
}

// ago says how long ago t was, as the rules' "Last match" column shows it.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	}
	return t.UTC().Format("2006-01-02")
}

// isoTime is t for a datetime attribute, "" when zero.
func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// LogView is the packet log section of a group's page: the newest entries,
// filtered as the form asks.
type LogView struct {
	Group   store.Group
	Verdict string // the filter form's values, as typed
	IP      string
	Errors  FieldErrors
	Entries []store.LogEntry  // newest first
	Servers map[string]string // server ID → name
	// Message says why the log could not be read, when it could not.
	Message string
}

// LogFormFields are the fields of the packet log's filter form.
var LogFormFields = []string{"verdict", "ip"}

// LogEntriesShown is how many entries the console shows.
const LogEntriesShown = 50

// PartialURL is the path of the entries' partial, with the filter.
func (v LogView) PartialURL() string {
	u := GroupURL(v.Group, "/log")
	if v.Verdict != "" {
		u += "&verdict=" + url.QueryEscape(v.Verdict)
	}
	if v.IP != "" {
		u += "&ip=" + url.QueryEscape(v.IP)
	}
	return u
}

// endpoint renders an address and port: 192.0.2.1:22, [2001:db8::1]:22,
// or the address alone without a port.
func endpoint(a netip.Addr, port uint16) string {
	if port == 0 {
		return a.String()
	}
	return netip.AddrPortFrom(a, port).String()
}

// decidedLabel names what decided an entry.
func decidedLabel(d store.Decider) string {
	switch d.Kind {
	case "rule":
		if d.Position > 0 {
			return fmt.Sprintf("Rule %d", d.Position)
		}
		return "A rule since removed"
	case "smtp":
		return fmt.Sprintf("SMTP %d", d.Position)
	case "default_policy":
		return "Default policy"
	case "stateful":
		return "Stateful (reply)"
	case "compile_error":
		return "Fail-closed (group not readable)"
	}
	return d.Kind
}

// decidedLink is where an entry's rule is shown, "" for none.
func decidedLink(d store.Decider) string {
	if (d.Kind == "rule" && d.Position > 0 || d.Kind == "smtp") && d.RuleID != "" {
		return "#rule-" + d.RuleID
	}
	return ""
}

func (v LogView) serverName(id string) string {
	if id == "" {
		return "—"
	}
	if n, ok := v.Servers[id]; ok {
		return n
	}
	return id
}

func directionLabel(d store.Direction) string {
	if d == store.Outbound {
		return "out"
	}
	return "in"
}
