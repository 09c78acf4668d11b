package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestIPSets: IP sets are created, read, listed, edited (replaced, added
// to, removed from), merged and deleted through the API; bad entries are
// named; 100,000 entries fit in a body of up to 8 MiB.
func TestIPSets(t *testing.T) {
	env := newTestEnv(t)
	base := env.url + "/instance/v1/zones/fr-par-1/ip_sets"
	a := call(t, "POST", base, `{"name":"office","description":"HQ","entries":["203.0.113.0/25","203.0.113.128/25","198.51.100.7","2001:db8::/48","203.0.113.9"]}`, env.auth())
	if a.status != http.StatusCreated || a.header.Get("Location") == "" {
		t.Fatalf("create: %d %s", a.status, a.raw)
	}
	id := field(a.body, "ip_set", "id").(string)
	entries := func(a answer) string {
		var out []string
		for _, e := range field(a.body, "ip_set", "entries").([]any) {
			out = append(out, e.(string))
		}
		return strings.Join(out, " ")
	}
	// Adjacent halves merged, the address inside them absorbed, v4 first.
	if got, want := entries(a), "198.51.100.7 203.0.113.0/24 2001:db8::/48"; got != want {
		t.Errorf("entries = %q, want %q", got, want)
	}
	for _, f := range []string{"id", "name", "description", "project", "organization", "zone", "entries", "creation_date", "modification_date"} {
		if field(a.body, "ip_set", f) == nil {
			t.Errorf("answer lacks %s: %s", f, a.raw)
		}
	}
	a = call(t, "PATCH", base+"/"+id, `{"add":["192.0.2.0/24"],"remove":["203.0.113.0/25"]}`, env.auth())
	if got, want := entries(a), "192.0.2.0/24 198.51.100.7 203.0.113.128/25 2001:db8::/48"; a.status != 200 || got != want {
		t.Errorf("add/remove: %d %q, want %q", a.status, got, want)
	}
	a = call(t, "PATCH", base+"/"+id, `{"entries":["10.0.0.0/8"]}`, env.auth())
	if got := entries(a); got != "10.0.0.0/8" {
		t.Errorf("replace: %q", got)
	}
	for _, tc := range []struct{ body, field string }{
		{`{"name":"x","entries":["10.0.0.0/33"]}`, "entries[0]"},
		{`{"name":"x","entries":["10.0.0.1","nope"]}`, "entries[1]"},
		{`{"name":"","entries":[]}`, "name"},
	} {
		a := call(t, "POST", base, tc.body, env.auth())
		if a.status != http.StatusBadRequest || !strings.Contains(a.raw, `"argument_name":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.body, a.status, a.raw, tc.field)
		}
	}
	if a := call(t, "PATCH", base+"/"+id, `{"add":["::1/129"]}`, env.auth()); a.status != 400 || !strings.Contains(a.raw, `"argument_name":"add[0]"`) {
		t.Errorf("bad add: %d %s", a.status, a.raw)
	}

	// 100,000 single addresses (about 2 MiB of JSON) fit; the list
	// answers them whole.
	many := make([]string, 100_000)
	for i := range many {
		many[i] = fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
	}
	body, _ := json.Marshal(map[string]any{"name": "big", "entries": many})
	if len(body) <= 1<<20 {
		t.Fatalf("the body is only %d bytes: it does not test the larger limit", len(body))
	}
	if a := call(t, "POST", base, string(body), env.auth()); a.status != http.StatusCreated {
		t.Fatalf("100,000 entries: %d %.200s", a.status, a.raw)
	}
	tooMany, _ := json.Marshal(map[string]any{"name": "too big", "entries": append(many, "10.255.255.1")})
	if a := call(t, "POST", base, string(tooMany), env.auth()); a.status != 400 || !strings.Contains(a.raw, `"argument_name":"entries"`) {
		t.Errorf("100,001 entries: %d %.200s", a.status, a.raw)
	}
	huge := `{"name":"x","description":"` + strings.Repeat("a", 9<<20) + `"}`
	if a := call(t, "POST", base, huge, env.auth()); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("9 MiB body: %d", a.status)
	}
	l := call(t, "GET", base, "", env.auth())
	if l.header.Get("X-Total-Count") != "2" {
		t.Errorf("list total = %q", l.header.Get("X-Total-Count"))
	}
	if a := call(t, "DELETE", base+"/"+id, "", env.auth()); a.status != http.StatusNoContent {
		t.Errorf("delete: %d %s", a.status, a.raw)
	}
	if a := call(t, "GET", base+"/"+id, "", env.auth()); a.status != http.StatusNotFound {
		t.Errorf("after delete: %d", a.status)
	}
}
