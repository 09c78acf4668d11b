package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/fleet"
	"github.com/rampart-fw/rampart/internal/testdb"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

// observed is a group with a rule that logs, a server, and three entries
// in its packet log: an accepted TCP packet (the rule, the server), an
// ICMP packet dropped by the default policy, an SMTP packet dropped.
type observed struct {
	group  store.Group
	rule   store.Rule
	server store.Server
}

func observeFixture(t *testing.T, db *store.DB, org string) observed {
	t.Helper()
	ctx := context.Background()
	g, err := db.CreateGroup(ctx, org, "fr-par-1", store.GroupInput{Name: "web", InboundDefaultPolicy: store.Drop})
	if err != nil {
		t.Fatal(err)
	}
	r, err := db.CreateRule(ctx, org, "fr-par-1", g.ID, store.RuleInput{IPRange: "0.0.0.0/0", DestPortFrom: ref(22), Log: ref(true)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := db.CreateServer(ctx, org, "fr-par-1", store.ServerInput{Name: "vm-1", Interface: "vnet1", Addresses: []string{"192.0.2.1"}, SecurityGroupID: g.ID})
	if err != nil {
		t.Fatal(err)
	}
	smtp := store.SMTPRules(g.ID)[0]
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	entries := []store.LogEntry{
		{GroupID: g.ID, Time: at, Host: "h1", ServerID: s.ID, Direction: store.Inbound, Protocol: "TCP",
			Source: netip.MustParseAddr("203.0.113.7"), SourcePort: 40000, Destination: netip.MustParseAddr("192.0.2.1"), DestinationPort: 22,
			Verdict: store.Accept, DecidedBy: store.Decider{Kind: "rule", RuleID: r.ID, Position: 1}},
		{GroupID: g.ID, Time: at.Add(time.Second), Host: "h1", Direction: store.Inbound, Protocol: "ICMP",
			Source: netip.MustParseAddr("203.0.113.8"), Destination: netip.MustParseAddr("192.0.2.1"),
			Verdict: store.Drop, DecidedBy: store.Decider{Kind: "default_policy"}},
		{GroupID: g.ID, Time: at.Add(2 * time.Second), Host: "h2", ServerID: s.ID, Direction: store.Outbound, Protocol: "TCP",
			Source: netip.MustParseAddr("192.0.2.1"), SourcePort: 41000, Destination: netip.MustParseAddr("198.51.100.25"), DestinationPort: 25,
			Verdict: store.Drop, DecidedBy: store.Decider{Kind: "smtp", RuleID: smtp.ID, Position: 1}},
	}
	if _, err := db.AppendLogEntries(ctx, entries); err != nil {
		t.Fatal(err)
	}
	return observed{group: g, rule: r, server: s}
}

func ref[T any](v T) *T { return &v }

// TestLogsAPI: GET …/logs answers {"entries", "next"} as the issue shows
// it, oldest first; since, verdict, ip and per_page select; next resumes;
// bad values answer 400 naming the field (the store's field cases).
func TestLogsAPI(t *testing.T) {
	env := newTestEnv(t)
	o := observeFixture(t, env.db, env.org.ID)
	logs := env.url + "/instance/v1/zones/fr-par-1/security_groups/" + o.group.ID + "/logs"
	a := call(t, "GET", logs, "", env.auth())
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	var body struct {
		Entries []json.RawMessage `json:"entries"`
		Next    string            `json:"next"`
	}
	if err := json.Unmarshal([]byte(a.raw), &body); err != nil || len(body.Entries) != 3 || body.Next != "3" || len(a.body) != 2 {
		t.Fatalf("answer %s", a.raw)
	}
	want := `{"time":"2026-03-01T12:00:00Z","host":"h1","server_id":"` + o.server.ID + `","direction":"inbound","protocol":"TCP",` +
		`"source":"203.0.113.7","source_port":40000,"destination":"192.0.2.1","destination_port":22,"verdict":"accept",` +
		`"decided_by":{"kind":"rule","rule_id":"` + o.rule.ID + `","position":1}}`
	if got := string(body.Entries[0]); got != want {
		t.Errorf("entry\n got %s\nwant %s", got, want)
	}
	want = `{"time":"2026-03-01T12:00:01Z","host":"h1","server_id":null,"direction":"inbound","protocol":"ICMP",` +
		`"source":"203.0.113.8","source_port":null,"destination":"192.0.2.1","destination_port":null,"verdict":"drop",` +
		`"decided_by":{"kind":"default_policy"}}`
	if got := string(body.Entries[1]); got != want {
		t.Errorf("ICMP entry\n got %s\nwant %s", got, want)
	}
	for _, tc := range []struct {
		query, want, next string
	}{
		{"verdict=drop", "203.0.113.8 192.0.2.1", "3"},
		{"ip=203.0.113.7", "203.0.113.7", "3"},
		{"ip=198.51.100.25&verdict=DROP", "192.0.2.1", "3"},
		{"since=1&per_page=1", "203.0.113.8", "2"},
		{"since=2", "192.0.2.1", "3"},
		{"since=3", "", "3"},
		{"per_page=1", "192.0.2.1", "3"},
	} {
		a := call(t, "GET", logs+"?"+tc.query, "", env.auth())
		var got []string
		for _, e := range a.body["entries"].([]any) {
			got = append(got, e.(map[string]any)["source"].(string))
		}
		if strings.Join(got, " ") != tc.want || a.body["next"] != tc.next {
			t.Errorf("?%s: sources %v next %v, want %q next %s", tc.query, got, a.body["next"], tc.want, tc.next)
		}
	}
	bad := map[string]string{"per_page=0": "per_page", "per_page=1001": "per_page"}
	for _, c := range store.FieldCases {
		if c.Input == "logs" {
			bad[c.Field+"="+url.QueryEscape(c.Values[c.Field])] = c.Field
		}
	}
	for query, field := range bad {
		a := call(t, "GET", logs+"?"+query, "", env.auth())
		details, _ := a.body["details"].([]any)
		if a.status != 400 || a.body["type"] != "invalid_arguments" || len(details) != 1 || details[0].(map[string]any)["argument_name"] != field {
			t.Errorf("?%s: %d %s, want 400 naming %s", query, a.status, a.raw, field)
		}
	}
}

// sseEvent is one server-sent event.
type sseEvent struct{ id, event, data string }

// sseReader reads a stream's events and comments.
type sseReader struct {
	t        *testing.T
	resp     *http.Response
	events   chan sseEvent
	comments chan string
}

func openStream(t *testing.T, url, token string, header map[string]string) *sseReader {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("stream: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	r := &sseReader{t: t, resp: resp, events: make(chan sseEvent, 100), comments: make(chan string, 100)}
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		defer close(r.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != "" {
					r.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				select {
				case r.comments <- line:
				default:
				}
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return r
}

// next returns the next event, failing the test after wait.
func (r *sseReader) next(wait time.Duration) sseEvent {
	r.t.Helper()
	select {
	case ev, ok := <-r.events:
		if !ok {
			r.t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(wait):
		r.t.Fatalf("no event within %s", wait)
	}
	return sseEvent{}
}

// TestLogsStream: with Accept: text/event-stream the log is a stream of
// events whose ids are cursors: the newest page first, then each entry as
// it is stored (this console's writes wake it at once); Last-Event-ID
// resumes after an event. It outlives the server's read and write timeouts
// (300 ms here), sending heartbeats, and twenty idle streams hold no
// database connection: reads go on beside them.
func TestLogsStream(t *testing.T) {
	defer web.SetSSEHeartbeat(100 * time.Millisecond)()
	env := newConsoleEnvWith(t, func(c *web.Config) {
		c.Timeouts = web.Timeouts{ReadHeader: time.Second, Read: 300 * time.Millisecond, Write: 300 * time.Millisecond, Idle: time.Second}
	})
	ctx := context.Background()
	_, secret, err := env.db.CreateToken(ctx, env.org.ID, "sse")
	if err != nil {
		t.Fatal(err)
	}
	o := observeFixture(t, env.db, env.org.ID)
	logs := env.ts.URL + "/instance/v1/zones/fr-par-1/security_groups/" + o.group.ID + "/logs"
	s := openStream(t, logs+"?verdict=drop", secret, nil)
	for _, want := range []string{"2", "3"} {
		if ev := s.next(2 * time.Second); ev.id != want || ev.event != "entry" || !strings.Contains(ev.data, `"verdict":"drop"`) {
			t.Fatalf("event %+v, want id %s", ev, want)
		}
	}
	// Past the timeouts, an entry stored is an event within a moment.
	time.Sleep(time.Second)
	add := func(src string, v store.Policy) {
		t.Helper()
		if _, err := env.db.AppendLogEntries(ctx, []store.LogEntry{{GroupID: o.group.ID, Time: time.Now(), Host: "h1",
			Direction: store.Inbound, Protocol: "UDP", Source: netip.MustParseAddr(src), SourcePort: 5000,
			Destination: netip.MustParseAddr("192.0.2.1"), DestinationPort: 53, Verdict: v, DecidedBy: store.Decider{Kind: "default_policy"}}}); err != nil {
			t.Fatal(err)
		}
	}
	add("203.0.113.50", store.Accept) // left out by the filter
	add("203.0.113.51", store.Drop)
	start := time.Now()
	if ev := s.next(2 * time.Second); ev.id != "5" || !strings.Contains(ev.data, `"source":"203.0.113.51"`) {
		t.Fatalf("event %+v, want id 5 from 203.0.113.51", ev)
	}
	t.Logf("an entry stored was an event %s later", time.Since(start).Round(time.Millisecond))
	select {
	case c := <-s.comments:
		if c != ": heartbeat" {
			t.Errorf("comment %q", c)
		}
	case <-time.After(time.Second):
		t.Error("no heartbeat")
	}
	s.resp.Body.Close()

	// Resuming after event 3 gives 4 and 5, then what comes.
	r := openStream(t, logs, secret, map[string]string{"Last-Event-ID": "3"})
	for _, want := range []string{"4", "5"} {
		if ev := r.next(2 * time.Second); ev.id != want {
			t.Fatalf("resumed: event %+v, want id %s", ev, want)
		}
	}
	add("203.0.113.52", store.Drop)
	if ev := r.next(2 * time.Second); ev.id != "6" {
		t.Fatalf("resumed: event %+v, want id 6", ev)
	}

	// A bad cursor is refused before any stream.
	a := call(t, "GET", logs+"?since=x", "", map[string]string{"X-Auth-Token": secret, "Accept": "text/event-stream"})
	if a.status != 400 || !strings.Contains(a.raw, `"argument_name":"since"`) {
		t.Errorf("since=x: %d %s", a.status, a.raw)
	}

	// Idle streams hold no database connection.
	for range 20 {
		openStream(t, logs+"?since=6", secret, nil)
	}
	done := make(chan answer, 1)
	go func() {
		done <- call(t, "GET", env.ts.URL+"/instance/v1/zones/fr-par-1/security_groups/"+o.group.ID, "", map[string]string{"X-Auth-Token": secret})
	}()
	select {
	case a := <-done:
		if a.status != 200 {
			t.Errorf("a read beside 20 streams: %d", a.status)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read beside 20 idle streams did not answer within 5 s")
	}
}

// fleetEnv is a console as serve runs it: the store, fleet.Console (its
// own host in preview) as the enforcer and the fleet, the web server.
type fleetEnv struct {
	db     *store.DB
	con    *fleet.Console
	host   store.Host
	ts     *httptest.Server
	org    store.Organization
	secret string
}

func newFleetEnv(t *testing.T) *fleetEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := store.Open(ctx, testdb.DSN(t), []string{"fr-par-1", "nl-ams-1"})
	if err != nil {
		t.Fatal(err)
	}
	env := &fleetEnv{db: db}
	if env.host, err = db.EnsureHost(ctx, "console"); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	env.con, err = fleet.New(ctx, fleet.Config{Store: db, Host: env.host, Backend: enforcer.NewPreview("test"), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { env.con.Run(ctx); close(done) }()
	srv, err := web.New(web.Config{Store: db, Enforcer: env.con, Fleet: env.con, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	env.ts = httptest.NewUnstartedServer(srv)
	env.ts.Config = srv.HTTPServer()
	env.ts.Start()
	t.Cleanup(func() { env.ts.Close(); cancel(); <-done; db.Close() })
	if env.org, err = db.EnsureOrganization(ctx, "Acme Hosting"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateUser(ctx, env.org.ID, consoleEmail, consolePassword); err != nil {
		t.Fatal(err)
	}
	if _, env.secret, err = db.CreateToken(ctx, env.org.ID, "api"); err != nil {
		t.Fatal(err)
	}
	<-env.con.Ready()
	return env
}

// TestResetCountersAndMetrics: a rule's counters add up over hosts and
// carry last_matched; reset_counters (API and console button) zeroes them
// on every host, answering the rules, audited with its actor and without
// moving the generation; the console's live partial carries the counts;
// /metrics shows each group's accepted and dropped packets, the log's
// totals and the hosts by state.
func TestResetCountersAndMetrics(t *testing.T) {
	env := newFleetEnv(t)
	ctx := context.Background()
	o := observeFixture(t, env.db, env.org.ID)
	h2, _, err := env.db.CreateHost(ctx, "h2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	seen := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	record := func(host string, tags map[string]store.Counter) {
		t.Helper()
		if err := env.db.RecordCounters(ctx, seen, store.HostCounters{HostID: host, Groups: map[string]map[string]store.Counter{o.group.ID: tags}}); err != nil {
			t.Fatal(err)
		}
	}
	record(env.host.ID, map[string]store.Counter{o.rule.ID: {Packets: 10, Bytes: 1000}, "default_in": {Packets: 4, Bytes: 400}, "log_limited": {Packets: 3, Bytes: 300}})
	record(h2.ID, map[string]store.Counter{o.rule.ID: {Packets: 5, Bytes: 500}})
	api := env.ts.URL + "/instance/v1/zones/fr-par-1/security_groups/" + o.group.ID
	auth := map[string]string{"X-Auth-Token": env.secret}
	rules := call(t, "GET", api+"/rules", "", auth)
	r := ruleOf(t, rules.body, o.rule.ID)
	if r["packets"] != 15.0 || r["bytes"] != 1500.0 || r["last_matched"] != "2026-03-01T12:00:00Z" || r["log"] != true {
		t.Errorf("rule before the reset: %v", r)
	}
	smtp := ruleOf(t, rules.body, store.SMTPRules(o.group.ID)[0].ID)
	if _, ok := smtp["last_matched"]; !ok || smtp["last_matched"] != nil || smtp["packets"] != 0.0 {
		t.Errorf("an SMTP rule never matched: %v", smtp)
	}
	if g := call(t, "GET", api, "", auth); field(g.body, "security_group", "log_default_drops") != true {
		t.Errorf("group: %s", g.raw)
	}

	// The console's own host is ready once it applied the group and said
	// so: a moment after the changes above.
	metrics := scrape(t, env.ts.URL)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(metrics, `rampart_hosts{state="ready"} 1`) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		metrics = scrape(t, env.ts.URL)
	}
	for _, want := range []string{
		fmt.Sprintf(`rampart_group_packets_total{group=%q,verdict="accept"} 15`, o.group.ID),
		fmt.Sprintf(`rampart_group_packets_total{group=%q,verdict="drop"} 4`, o.group.ID),
		fmt.Sprintf(`rampart_group_bytes_total{group=%q,verdict="accept"} 1500`, o.group.ID),
		`rampart_log_entries_rate_limited_total 3`,
		`rampart_log_entries_total{outcome="dropped_buffer"} 0`,
		`rampart_log_entries_total{outcome="received"} 0`,
		`rampart_hosts{state="pending"} 1`,
		`rampart_hosts{state="ready"} 1`,
		`rampart_hosts{state="lost"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^rampart_group_packets_total`).FindAllString(metrics, -1)); n != 2 {
		t.Errorf("%d series of rampart_group_packets_total, want 2 (one group, two verdicts: never per rule)", n)
	}

	gen0, _ := env.db.Generation(ctx)
	a := call(t, "POST", api+"/reset_counters", "", auth)
	if a.status != 200 {
		t.Fatalf("reset_counters: %d %s", a.status, a.raw)
	}
	if r := ruleOf(t, a.body, o.rule.ID); r["packets"] != 0.0 || r["last_matched"] != "2026-03-01T12:00:00Z" {
		t.Errorf("rule in the answer of the reset: %v", r)
	}
	if gen, _ := env.db.Generation(ctx); gen != gen0 {
		t.Errorf("generation moved from %d to %d", gen0, gen)
	}
	events := call(t, "GET", api+"/events?per_page=1", "", auth)
	ev := events.body["events"].([]any)[0].(map[string]any)
	if ev["action"] != "reset_counters" || !strings.HasPrefix(ev["actor"].(string), "token ") || ev["generation"] != float64(gen0) {
		t.Errorf("audit entry %v", ev)
	}
	// Host h2 counts on from where it was: 9 is 4 since the reset.
	seen = seen.Add(time.Minute)
	record(h2.ID, map[string]store.Counter{o.rule.ID: {Packets: 9, Bytes: 900}})

	env2 := &consoleEnv{db: env.db, ts: env.ts, org: env.org}
	b := env2.signedIn(t)
	p := b.get(groupPath(o.group, "/counters"), true)
	wantStatus(t, p, 200)
	d := p.doc.Find(`data[data-tag="` + o.rule.ID + `"]`)
	if v, _ := d.Attr("value"); v != "4" {
		t.Errorf("live counters of the rule: value %q, want 4: %s", v, p.body)
	}
	if v, _ := d.Attr("data-last-title"); v != "2026-03-01T12:01:00Z" {
		t.Errorf("live last match %q", v)
	}
	if p.doc.Find(`data[data-tag="default_in"]`).Length() != 1 {
		t.Error("no live counter of the inbound default policy")
	}
	page := b.get(groupPath(o.group, ""), false)
	if cell := strings.TrimSpace(page.doc.Find(`#rule-` + o.rule.ID + ` [data-field="packets"]`).Text()); cell != "4" {
		t.Errorf("the rule's packets cell says %q, want 4", cell)
	}
	if page.doc.Find(`#counters-live[hx-trigger="every 2s"]`).Length() != 1 {
		t.Error("the Rules section does not poll its counters")
	}
	p = b.post(groupPath(o.group, "/counters/reset"), nil, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	if loc := p.header.Get("Location"); !strings.HasSuffix(loc, "#rules") {
		t.Errorf("reset answered %s", loc)
	}
	page = b.get(groupPath(o.group, ""), false)
	if cell := strings.TrimSpace(page.doc.Find(`#rule-` + o.rule.ID + ` [data-field="packets"]`).Text()); cell != "0" {
		t.Errorf("after the console's reset the packets cell says %q", cell)
	}
	if !strings.Contains(page.doc.Find("#activity").Text(), "counters reset") || !strings.Contains(page.body, "Counters reset") {
		t.Error("the page shows neither the flash nor the audit entry of the reset")
	}
	events = call(t, "GET", api+"/events?per_page=1", "", auth)
	if ev := events.body["events"].([]any)[0].(map[string]any); ev["action"] != "reset_counters" || ev["actor"] != "user "+consoleEmail {
		t.Errorf("console reset's audit entry %v", ev)
	}
	// The CSRF token is required, as for every console change.
	if p := b.post(groupPath(o.group, "/counters/reset"), nil, false, true); p.status != http.StatusForbidden {
		t.Errorf("a reset without the CSRF token: %d", p.status)
	}
}

func ruleOf(t *testing.T, body map[string]any, id string) map[string]any {
	t.Helper()
	rules, _ := body["rules"].([]any)
	for _, r := range rules {
		if m := r.(map[string]any); m["id"] == id {
			return m
		}
	}
	t.Fatalf("rule %s not in %v", id, body)
	return nil
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}

// TestConsolePacketLog: the group's page shows its packet log newest
// first, each entry naming what decided it and linking to the rule's row;
// the GET form filters it without JavaScript and shows a bad address
// beside its field; the rows poll themselves (htmx) with the filter; the
// rule form's "Log matches" and the Overview's "Log packets dropped by
// default" set the Rampart fields.
func TestConsolePacketLog(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	o := observeFixture(t, env.db, env.org.ID)
	page := b.get(groupPath(o.group, ""), false)
	wantStatus(t, page, 200)
	rows := page.doc.Find(`#log-rows tr`)
	if rows.Length() != 3 {
		t.Fatalf("%d log rows", rows.Length())
	}
	var cells []string
	rows.First().Find("td").Each(func(_ int, td *goquery.Selection) { cells = append(cells, strings.TrimSpace(td.Text())) })
	if first := strings.Join(cells, " | "); first != "12:00:02 | h2 | vm-1 | out | TCP | 192.0.2.1:41000 | 198.51.100.25:25 | Drop | SMTP 1" {
		t.Errorf("newest row: %q", first)
	}
	if href, _ := rows.Eq(2).Find("a").Attr("href"); href != "#rule-"+o.rule.ID {
		t.Errorf("the rule's entry links to %q", href)
	}
	if page.doc.Find("#rule-"+o.rule.ID).Length() != 1 {
		t.Error("no row #rule-<id> to link to")
	}
	if got := strings.TrimSpace(rows.Eq(1).Find("td").Last().Text()); got != "Default policy" {
		t.Errorf("the default policy's entry says %q", got)
	}
	wrap := page.doc.Find(`.log-wrap`)
	if tab, _ := wrap.Attr("tabindex"); tab != "0" || wrap.AttrOr("aria-label", "") == "" {
		t.Error("the scrollable log is not focusable and labelled")
	}
	// The filter, without JavaScript.
	page = b.get(groupPath(o.group, "")+"&verdict=drop&ip=203.0.113.8", false)
	if rows := page.doc.Find(`#log-rows tr`); rows.Length() != 1 || !strings.Contains(rows.Text(), "203.0.113.8") {
		t.Errorf("filtered rows: %q", rows.Text())
	}
	if trig, _ := page.doc.Find(`#log-rows`).Attr("hx-get"); !strings.Contains(trig, "verdict=drop") || !strings.Contains(trig, "ip=203.0.113.8") {
		t.Errorf("the rows poll %q, without the filter", trig)
	}
	if v, _ := page.doc.Find(`#log-verdict option[selected]`).Attr("value"); v != "drop" {
		t.Errorf("the verdict shown is %q", v)
	}
	page = b.get(groupPath(o.group, "")+"&ip=nowhere", false)
	wantStatus(t, page, 200)
	if msg := fieldError(page, "log-ip"); !strings.Contains(msg, "IP address") {
		t.Errorf("a bad address: message %q beside the field", msg)
	}
	// The rows' partial, and its page without htmx.
	p := b.get(groupPath(o.group, "/log")+"&verdict=accept", true)
	wantStatus(t, p, 200)
	// A fragment of a table: its rows, not a page.
	if !strings.HasPrefix(p.body, `<tbody id="log-rows"`) || strings.Count(p.body, "<tr data-cursor=") != 1 || !strings.Contains(p.body, `hx-trigger="every 2s"`) {
		t.Errorf("partial: %s", p.body)
	}
	p = b.get(groupPath(o.group, "/log")+"&verdict=accept", false)
	if loc := p.header.Get("Location"); p.status != http.StatusSeeOther || !strings.Contains(loc, "verdict=accept") || !strings.HasSuffix(loc, "#log") {
		t.Errorf("without htmx: %d %s", p.status, loc)
	}

	// "Log matches" on the rule form, and in the row being edited.
	p = b.post(groupPath(o.group, "/rules"), url.Values{"direction": {"inbound"}, "action": {"accept"}, "protocol": {"TCP"},
		"ip_range": {"10.0.0.0/8"}, "dest_port_from": {"443"}, "log": {"on"}}, true, false)
	wantStatus(t, p, 200)
	rules, _ := env.db.Rules(context.Background(), env.org.ID, "fr-par-1", o.group.ID)
	if len(rules) != 2 || !rules[1].Log {
		t.Fatalf("rules after adding one with log: %+v", rules)
	}
	if p.doc.Find(`#rule-`+rules[1].ID+` .badge-log`).Length() != 1 {
		t.Error("a rule that logs shows no badge")
	}
	p = b.get(groupPath(o.group, "/rules/"+rules[1].ID+"/edit"), true)
	if _, on := p.doc.Find(`#edit-log`).Attr("checked"); !on {
		t.Error("the edited rule's Log matches is not checked")
	}
	p = b.post(groupPath(o.group, "/rules/"+rules[1].ID), url.Values{"action": {"accept"}, "protocol": {"TCP"}, "ip_range": {"10.0.0.0/8"},
		"dest_port_from": {"443"}}, true, false)
	wantStatus(t, p, 200)
	if r, _ := env.db.Rule(context.Background(), env.org.ID, "fr-par-1", o.group.ID, rules[1].ID); r.Log {
		t.Error("unchecking Log matches kept log on")
	}
	// The Overview's checkbox.
	if _, on := b.get(groupPath(o.group, ""), false).doc.Find(`#o-log-drops`).Attr("checked"); !on {
		t.Error("Log packets dropped by default is not checked for a new group")
	}
	p = b.post(groupPath(o.group, ""), url.Values{"name": {"web"}, "inbound_default_policy": {"drop"}, "outbound_default_policy": {"accept"}}, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	if g, _ := env.db.Group(context.Background(), env.org.ID, "fr-par-1", o.group.ID); g.LogDefaultDrops {
		t.Error("unchecking Log packets dropped by default kept it on")
	}
}
