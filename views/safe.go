package views

import (
	"fmt"
	"strings"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// VersionView is the page of one version of a group: what changed from
// another version, what it held, and the form that reverts to it.
type VersionView struct {
	Comparison store.VersionComparison
	CSRF       string
	Against    string // the compare form's value, as typed
	Confirm    bool
	Errors     FieldErrors // the compare form's and the revert form's
	Message    string      // a refused revert
}

// Current reports whether the version shown is the group's latest.
func (v VersionView) Current() bool { return v.Comparison.To.Version == v.Comparison.Group.Version }

// DraftView is the review of a person's draft of a group's rules.
type DraftView struct {
	Review  store.DraftReview
	Rules   RulesView // the draft's rules, in the rules tables
	NFT     string    // the group's chains as the draft compiles
	CSRF    string
	Confirm bool
	Message string // a refused apply
}

// DraftTextView edits a draft's rules as text.
type DraftTextView struct {
	Group  store.Group
	CSRF   string
	Text   string
	Errors []store.FieldError // by line
}

// PendingNotice is how a page mentions a change that awaits confirmation.
func pendingGroupURL(n store.PendingNotice) string {
	return GroupURL(store.Group{ID: n.GroupID, Zone: n.Zone}, "") + "#pending"
}

// remaining is how many whole seconds are left until t (0 once past).
func remaining(t time.Time) int {
	d := time.Until(t)
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// clock shows a deadline's time of day, in UTC.
func clock(t time.Time) string { return t.UTC().Format("15:04:05 UTC") }

// settingValue shows a setting's value in a diff.
func settingValue(field string, v any) string {
	switch x := v.(type) {
	case bool:
		switch field {
		case "smtp_enabled":
			if x {
				return "enabled"
			}
			return "blocked"
		case "stateful":
			if x {
				return "stateful"
			}
			return "stateless"
		}
		if x {
			return "yes"
		}
		return "no"
	case []string:
		if len(x) == 0 {
			return "none"
		}
		return strings.Join(x, ", ")
	case string:
		if field == "inbound_default_policy" || field == "outbound_default_policy" {
			return policyLabel(store.Policy(x))
		}
		if x == "" {
			return "(empty)"
		}
		return x
	}
	return fmt.Sprint(v)
}

// rulesDiffer reports whether a diff has rule changes.
func rulesDiffer(d store.VersionDiff) bool {
	return len(d.Added)+len(d.Removed)+len(d.Changed)+len(d.Moved) > 0
}

// ruleCounts says how many rules a diff adds, removes, changes and moves.
func ruleCounts(d store.VersionDiff) string {
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{{len(d.Added), "added"}, {len(d.Removed), "removed"}, {len(d.Changed), "changed"}, {len(d.Moved), "moved"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return "Rules: " + strings.Join(parts, ", ") + "."
}

func lineClass(op byte) string {
	switch op {
	case '+':
		return "diff-add"
	case '-':
		return "diff-del"
	}
	return "diff-same"
}

// lineLabel is what a screen reader says before a line of a diff.
func lineLabel(op byte) string {
	switch op {
	case '+':
		return "Added: "
	case '-':
		return "Removed: "
	}
	return "Unchanged: "
}

func lineOp(op byte) string {
	if op == ' ' {
		return " "
	}
	return string(op)
}

// lineNumber shows the line a text error is about ("line 3" → "Line 3").
func lineNumber(field string) string {
	if strings.HasPrefix(field, "line ") {
		return "Line " + strings.TrimPrefix(field, "line ")
	}
	return "The text"
}

// textDescribedBy links the rules textarea to its hint and its errors.
func textDescribedBy(v DraftTextView) string {
	if len(v.Errors) > 0 {
		return "rules-text-hint rules-text-errors"
	}
	return "rules-text-hint"
}

func versionLink(g store.Group, n int) string { return GroupURL(g, "/versions/"+itoa(n)) }
