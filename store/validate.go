package store

import (
	"encoding/json"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Limits of the domain.
const (
	MaxNameLength        = 128
	MaxDescriptionLength = 255
	MaxTags              = 50
	MaxTagLength         = 128
	MaxAddresses         = 32
)

// ParseIPRange parses a CIDR or a bare address (taken as /32 or /128) and
// clears host bits, as Scaleway does.
func ParseIPRange(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Prefix{}, false
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, false
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// FormatIPRange renders a range as Scaleway answers it: a single address
// bare, anything wider with its prefix.
func FormatIPRange(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func checkName(fe *fieldErrors, field, name string) {
	n := utf8.RuneCountInString(name)
	switch {
	case strings.TrimSpace(name) == "":
		fe.add(field, "required", "a name is required")
	case n > MaxNameLength:
		fe.add(field, "constraint", "at most %d characters (got %d)", MaxNameLength, n)
	}
}

func checkDescription(fe *fieldErrors, field, d string) {
	if n := utf8.RuneCountInString(d); n > MaxDescriptionLength {
		fe.add(field, "constraint", "at most %d characters (got %d)", MaxDescriptionLength, n)
	}
}

func checkTags(fe *fieldErrors, field string, tags []string) {
	if len(tags) > MaxTags {
		fe.add(field, "constraint", "at most %d tags", MaxTags)
		return
	}
	for _, t := range tags {
		if t == "" || utf8.RuneCountInString(t) > MaxTagLength || strings.Contains(t, ",") {
			fe.add(field, "format", "each tag is 1 to %d characters without commas", MaxTagLength)
			return
		}
	}
}

func checkPolicy(fe *fieldErrors, field string, p Policy) {
	if p != Accept && p != Drop {
		fe.add(field, "format", "must be accept or drop (got %q)", string(p))
	}
}

// validInterfaceName follows the kernel's rules for interface names.
func validInterfaceName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == '/' || r == ':' || r > '~' {
			return false
		}
	}
	return true
}

func encodeList[T any](v []T) string {
	if v == nil {
		v = []T{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func decodeTags(s string) []string {
	tags := []string{}
	json.Unmarshal([]byte(s), &tags)
	return tags
}

func decodeAddrs(s string) []netip.Addr {
	addrs := []netip.Addr{}
	json.Unmarshal([]byte(s), &addrs)
	return addrs
}
