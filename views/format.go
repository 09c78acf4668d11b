package views

import (
	"fmt"
	"strconv"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// ports renders a rule's destination ports.
func ports(r store.Rule) string {
	switch {
	case r.DestPortFrom == 0:
		return "All"
	case r.DestPortTo == 0:
		return strconv.Itoa(int(r.DestPortFrom))
	default:
		return fmt.Sprintf("%d-%d", r.DestPortFrom, r.DestPortTo)
	}
}

func ipRange(r store.Rule) string { return store.FormatIPRange(r.IPRange) }

// remoteURL is the console page of the set or group a rule matches.
func remoteURL(g store.Group, r store.Rule) string {
	if r.IPSetID != "" {
		return IPSetURL(store.IPSet{ID: r.IPSetID, Zone: g.Zone}, "")
	}
	return GroupURL(store.Group{ID: r.RemoteGroupID, Zone: g.Zone}, "")
}

// remoteName names the set or group a rule matches, by its name when
// known.
func remoteName(c store.RemoteChoices, r store.Rule) string {
	kind, id := "IP set", r.IPSetID
	if id == "" {
		kind, id = "group", r.RemoteGroupID
	}
	if name := c.Name(id); name != "" {
		return kind + " " + name
	}
	return kind + " " + id
}

// count renders a counter compactly: 1234 -> 1.2k.
func count(n uint64) string {
	switch {
	case n < 1000:
		return strconv.FormatUint(n, 10)
	case n < 1_000_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	case n < 1_000_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.1fG", float64(n)/1e9)
	}
}

// bytes renders a byte count with binary units.
func bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func itoa(n int) string { return strconv.Itoa(n) }

func statusText(status int) string { return strconv.Itoa(status) }
