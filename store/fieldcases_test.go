package store

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// fieldsNotFromInput are the fields the store names that no single input
// value can produce, with where they are tested instead.
var fieldsNotFromInput = map[string]string{
	"rules":             "a group's rule count: TestRuleLimitAndPatchSemantics",
	"id":                "set-all element IDs: TestRulePositions and the API's set-all tests",
	"rule":              "a stored row read back (Unreadable): TestUnreadableRowsMarked",
	"smtp_enabled":      "a stored row read back (Unreadable): TestUnreadableRowsMarked",
	"log":               "a stored row read back (Unreadable): TestObserveFieldsUnreadable",
	"log_default_drops": "a stored row read back (Unreadable): TestObserveFieldsUnreadable",
}

// TestFieldCasesComplete: every field that the store's checks can name has
// a FieldCase (or is listed above with where it is tested), so that the
// console and API tests that range over FieldCases cover a new check as
// soon as it exists.
func TestFieldCasesComplete(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	calls := regexp.MustCompile(`(?:fe\.add|invalid|Invalid|add)\((?:prefix\+)?"([a-z_]+)"|check(?:Name|Description|Tags|Policy|Text)\(&?fe, "([a-z_]+)"`)
	named := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "fieldcases.go" {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range calls.FindAllStringSubmatch(string(src), -1) {
			named[m[1]+m[2]] = true
		}
	}
	covered := map[string]bool{}
	for _, c := range FieldCases {
		covered[c.Field] = true
	}
	var missing []string
	for f := range named {
		if !covered[f] && fieldsNotFromInput[f] == "" {
			missing = append(missing, f)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("fields the store names without a FieldCase: %v", missing)
	}
	if len(named) < 20 || !named["ip_range"] || !named["interface"] {
		t.Errorf("the scan found only %v: is the pattern still right?", slices.Sorted(func(yield func(string) bool) {
			for f := range named {
				if !yield(f) {
					return
				}
			}
		}))
	}
}
