package store

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
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

// ParsePort reads a port as a form carries it: empty is no port (nil);
// anything but a whole number is refused, naming field. The range is
// checked with the rest of the rule.
func ParsePort(field, s string) (*int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return nil, invalid(field, "format", "a port is a whole number from 1 to 65535 (got %q)", s)
	}
	return &n, nil
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

// textProblem says why s cannot be stored as text a person reads, or "":
// invalid UTF-8 would be replaced on the way, control characters (NUL,
// ESC, …) and bidirectional controls change what a reader sees (U+202E
// shows "admin\u202egpj.exe" as "adminexe.jpg").
func textProblem(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Cc, r):
			return fmt.Sprintf("must not contain control characters (found U+%04X)", r)
		case isBidiControl(r):
			return fmt.Sprintf("must not contain bidirectional control characters (found U+%04X)", r)
		}
	}
	return ""
}

// isBidiControl reports the characters that reorder text around them
// (Unicode's Bidi_Control property).
func isBidiControl(r rune) bool {
	return r == 0x061C || r == 0x200E || r == 0x200F || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// checkText adds an error for field when s is not readable text; it
// reports whether s is.
func checkText(fe *fieldErrors, field, s string) bool {
	if p := textProblem(s); p != "" {
		fe.add(field, "format", "%s", p)
		return false
	}
	return true
}

func checkName(fe *fieldErrors, field, name string) {
	if !checkText(fe, field, name) {
		return
	}
	n := utf8.RuneCountInString(name)
	switch {
	case strings.TrimSpace(name) == "":
		fe.add(field, "required", "a name is required")
	case n > MaxNameLength:
		fe.add(field, "constraint", "at most %d characters (got %d)", MaxNameLength, n)
	}
}

// checkDescription adds an error for field when d is not a description
// (text, at most MaxDescriptionLength characters); it reports whether d is.
func checkDescription(fe *fieldErrors, field, d string) bool {
	if !checkText(fe, field, d) {
		return false
	}
	if n := utf8.RuneCountInString(d); n > MaxDescriptionLength {
		fe.add(field, "constraint", "at most %d characters (got %d)", MaxDescriptionLength, n)
		return false
	}
	return true
}

func checkTags(fe *fieldErrors, field string, tags []string) {
	if len(tags) > MaxTags {
		fe.add(field, "constraint", "at most %d tags", MaxTags)
		return
	}
	for _, t := range tags {
		if !checkText(fe, field, t) {
			return
		}
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

// MaxInterfaceName is the longest interface name the kernel takes
// (IFNAMSIZ-1 bytes).
const MaxInterfaceName = 15

// ValidInterfaceName reports whether s may name a host interface: 1 to 15
// letters, digits, '.', '_' or '-', and not "." or "..". The kernel takes
// more (any byte but '/', ':' and white space), but every name a
// hypervisor or container runtime makes fits this, and nothing in it needs
// quoting in nft text, a log line or a glob. The store refuses other
// names and the enforcer only ever sees these.
func ValidInterfaceName(s string) bool {
	if s == "" || len(s) > MaxInterfaceName || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
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
