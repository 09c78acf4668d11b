package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/internal/testdb"
	"github.com/rampart-fw/rampart/store"
)

// TestTenancySweep walks every registered route that names an object and
// tries it with another organization's IDs, with a valid token (API) or
// session (console): each attempt answers 404 exactly as for an ID that
// does not exist, and nothing changes. Routes are read from the router, so
// a new route is swept without touching this test.
func TestTenancySweep(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, testdb.DSN(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	backend, _ := enforcer.Open(enforcer.ModePreview)
	rec := enforcer.NewReconciler(db, backend, slog.New(slog.DiscardHandler))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { rec.Run(rctx); close(done) }()
	srv, err := New(Config{Store: db, Enforcer: rec, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer func() { ts.Close(); cancel(); <-done; db.Close() }()

	mine, _ := db.EnsureOrganization(ctx, "mine")
	theirs, _ := db.EnsureOrganization(ctx, "theirs")
	if _, err := db.CreateUser(ctx, mine.ID, "me@mine.test", "my long password"); err != nil {
		t.Fatal(err)
	}
	_, secret, _ := db.CreateToken(ctx, mine.ID, "")
	myGroup, _ := db.CreateGroup(ctx, mine.ID, "fr-par-1", store.GroupInput{Name: "my group"})
	theirGroup, _ := db.CreateGroup(ctx, theirs.ID, "fr-par-1", store.GroupInput{Name: "their group"})
	theirRule, _ := db.CreateRule(ctx, theirs.ID, "fr-par-1", theirGroup.ID, store.RuleInput{IPRange: "0.0.0.0/0"})
	theirServer, _ := db.CreateServer(ctx, theirs.ID, "fr-par-1", store.ServerInput{Name: "their vm", SecurityGroupID: theirGroup.ID})
	theirToken, _, _ := db.CreateToken(ctx, theirs.ID, "")
	theirSet, err := db.CreateIPSet(ctx, theirs.ID, "fr-par-1", store.IPSetInput{Name: "their set", Entries: []string{"192.0.2.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	// What is observed of their group is not a change (the generation
	// does not move with it): a reset or a read of it is checked below.
	host, _ := db.EnsureHost(ctx, "h1")
	if err := db.RecordCounters(ctx, time.Now(), store.HostCounters{HostID: host.ID,
		Groups: map[string]map[string]store.Counter{theirGroup.ID: {theirRule.ID: {Packets: 7, Bytes: 700}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppendLogEntries(ctx, []store.LogEntry{{GroupID: theirGroup.ID, Time: time.Now(), Host: "their host",
		Direction: store.Inbound, Protocol: "TCP", Source: netip.MustParseAddr("198.51.100.66"), Destination: netip.MustParseAddr("192.0.2.1"),
		Verdict: store.Drop, DecidedBy: store.Decider{Kind: "default_policy"}}}); err != nil {
		t.Fatal(err)
	}
	theirEvents, _ := db.Events(ctx, theirs.ID, "fr-par-1", theirGroup.ID, 100)

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// The token is in every page; it changes with the session at sign-in.
	token := ""
	csrf := func() string {
		if token == "" {
			resp, err := client.Get(ts.URL + "/security-groups")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindSubmatch(body)
			if m == nil {
				t.Fatalf("no CSRF token in /security-groups")
			}
			token = string(m[1])
		}
		return token
	}
	loginPage, err := client.Get(ts.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(loginPage.Body)
	loginPage.Body.Close()
	m := regexp.MustCompile(`name="_csrf" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token in /login")
	}
	resp, err := client.PostForm(ts.URL+"/login", url.Values{"email": {"me@mine.test"}, "password": {"my long password"}, "_csrf": {string(m[1])}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %v %v", err, resp.StatusCode)
	}
	resp.Body.Close()

	missing := "00000000-0000-4000-8000-000000000000"
	variants := []struct {
		name   string
		params map[string]string
	}{
		{"their IDs", map[string]string{":zone": "fr-par-1", ":n": "1", ":id": theirGroup.ID, ":rule": theirRule.ID, ":server": theirServer.ID, ":key": theirToken.AccessKey, ":set": theirSet.ID}},
		{"my group, their rule", map[string]string{":zone": "fr-par-1", ":n": "1", ":id": myGroup.ID, ":rule": theirRule.ID, ":server": theirServer.ID, ":key": theirToken.AccessKey, ":set": theirSet.ID}},
		{"IDs that do not exist", map[string]string{":zone": "fr-par-1", ":n": "1", ":id": missing, ":rule": missing, ":server": missing, ":key": "SCW00000000000000000", ":set": missing}},
	}
	attempts := 0
	for _, r := range srv.e.Routes() {
		// Every route that names an object (any parameter but the zone) is
		// swept. The Operator area's are the install's, not an
		// organization's: TestConsoleOperatorArea shows they do not exist
		// for members.
		objectParam := strings.Contains(strings.ReplaceAll(r.Path, ":zone", ""), ":")
		if !objectParam || r.Method == echo404Method || strings.HasPrefix(r.Path, "/static") || strings.HasPrefix(r.Path, "/operator/") {
			continue
		}
		// A literal "default" segment is a list of shared rules, not an object.
		if strings.Contains(r.Path, "/default/") {
			continue
		}
		var answers []string
		for _, v := range variants {
			if v.name == "my group, their rule" && !strings.Contains(r.Path, ":rule") {
				continue
			}
			path := r.Path
			for p, val := range v.params {
				path = strings.ReplaceAll(path, p, val)
			}
			if strings.Contains(path, ":") {
				t.Fatalf("route %s %s has a parameter the sweep does not know", r.Method, r.Path)
			}
			before, _ := db.Generation(ctx)
			var body io.Reader
			req, _ := http.NewRequest(r.Method, ts.URL+path, body)
			api := strings.HasPrefix(path, "/instance/") || strings.HasPrefix(path, "/security_groups")
			switch {
			case api:
				req.Header.Set("X-Auth-Token", secret)
				if r.Method != http.MethodGet && r.Method != http.MethodDelete {
					req.Body = io.NopCloser(strings.NewReader(`{"name":"stolen","action":"drop","protocol":"TCP","direction":"inbound","ip_range":"0.0.0.0/0","security_group":{"id":"` + myGroup.ID + `"}}`))
					req.Header.Set("Content-Type", "application/json")
				}
			case r.Method == http.MethodPost:
				req.Body = io.NopCloser(strings.NewReader(url.Values{"name": {"stolen"}, "position": {"1"}, "_csrf": {csrf()}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			attempts++
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s (%s): status %d, want 404: %.200s", r.Method, r.Path, v.name, resp.StatusCode, raw)
				continue
			}
			if after, _ := db.Generation(ctx); after != before {
				t.Errorf("%s %s (%s) wrote to the database", r.Method, r.Path, v.name)
			}
			for _, leak := range []string{"their group", "their vm", "their set", theirs.ID, "198.51.100.66", "their host"} {
				if strings.Contains(string(raw), leak) {
					t.Errorf("%s %s (%s) leaks %q", r.Method, r.Path, v.name, leak)
				}
			}
			if api {
				var e struct{ Type, Message, Resource string }
				json.Unmarshal(raw, &e)
				answers = append(answers, e.Type+"|"+e.Message+"|"+e.Resource)
			}
		}
		// Another organization's object answers exactly as a missing one.
		if len(answers) >= 2 && answers[0] != answers[len(answers)-1] {
			t.Errorf("%s %s: %q for their object but %q for a missing one", r.Method, r.Path, answers[0], answers[len(answers)-1])
		}
	}
	if attempts < 50 {
		t.Fatalf("only %d attempts", attempts)
	}
	if c, _ := db.GroupCounters(ctx, theirs.ID, "fr-par-1", theirGroup.ID); c[theirRule.ID].Packets != 7 {
		t.Errorf("their counters = %+v after the sweep, want 7 packets kept", c)
	}
	if events, _ := db.Events(ctx, theirs.ID, "fr-par-1", theirGroup.ID, 100); len(events) != len(theirEvents) {
		t.Errorf("their group's audit log went from %d to %d entries", len(theirEvents), len(events))
	}
	t.Logf("%d attempts on %d organizations' objects, all 404", attempts, 2)
}

// echo404Method is the method Echo gives its generated not-found routes.
const echo404Method = "echo_route_not_found"
