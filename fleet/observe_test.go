package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/agent"
	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/fleet"
	"github.com/rampart-fw/rampart/hostview"
	"github.com/rampart-fw/rampart/store"
)

func (h *rawHost) observe(tb testing.TB, url string, o hostview.Observations) int {
	tb.Helper()
	body, _ := json.Marshal(o)
	resp, err := h.client().Post(url+hostview.ObservationsPath(h.id), "application/json", bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("POST observations: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestObservations: what an agent observed reaches the store with its
// host: entries named (the server holding the local address on that
// host, the rule's position, an SMTP row told from a rule) and written
// within a moment; counters added to the other hosts'; the counters of a
// report (what agents from before Observations send) kept too; a host
// observes for itself only.
func TestObservations(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	con := startConsole(t, db, consoleOpts{})
	_, token := must2(t)(fleet.CreateHost(ctx, db, "h1", 0))
	raw, err := enrolRaw(t, con.url, token)
	if err != nil {
		t.Fatal(err)
	}
	_, token2 := must2(t)(fleet.CreateHost(ctx, db, "h2", 0))
	raw2, err := enrolRaw(t, con.url, token2)
	if err != nil {
		t.Fatal(err)
	}
	org := must[store.Organization](t)(db.EnsureOrganization(ctx, "acme"))
	g := must[store.Group](t)(db.CreateGroup(ctx, org.ID, zone, store.GroupInput{Name: "web", InboundDefaultPolicy: store.Drop}))
	must[store.Rule](t)(db.CreateRule(ctx, org.ID, zone, g.ID, store.RuleInput{IPRange: "10.0.0.0/8"}))
	r := must[store.Rule](t)(db.CreateRule(ctx, org.ID, zone, g.ID, store.RuleInput{IPRange: "0.0.0.0/0", DestPortFrom: ptr(22), Log: ptr(true)}))
	s1 := must[store.Server](t)(db.CreateServer(ctx, org.ID, zone, store.ServerInput{Name: "vm1", Interface: "vm1",
		Addresses: []string{"10.0.0.5"}, SecurityGroupID: g.ID, Host: "h1"}))
	// The same address on another host is another server.
	must[store.Server](t)(db.CreateServer(ctx, org.ID, zone, store.ServerInput{Name: "vm2", Interface: "vm2",
		Addresses: []string{"10.0.0.5"}, SecurityGroupID: g.ID, Host: "h2"}))
	smtp := store.SMTPRules(g.ID)[2]
	// The hub reads the servers before entries can name them.
	waitFor(t, "the hub's view of the servers", func() bool {
		return len(con.c.GroupHosts(g.ID, must[store.Group](t)(db.Group(ctx, org.ID, zone, g.ID)).Generation)) == 2
	})

	at := time.Now().UTC().Truncate(time.Microsecond)
	obs := hostview.Observations{HostID: raw.id, Entries: []hostview.LogEntry{
		{Time: at, GroupID: g.ID, Direction: store.Inbound, Protocol: "TCP", Source: netip.MustParseAddr("203.0.113.9"), SourcePort: 5555,
			Destination: netip.MustParseAddr("10.0.0.5"), DestinationPort: 22, Verdict: store.Accept, DecidedBy: store.Decider{Kind: "rule", RuleID: r.ID}},
		// As a reader without an index names an SMTP row: a rule tag.
		{Time: at, GroupID: g.ID, Direction: store.Outbound, Protocol: "TCP", Source: netip.MustParseAddr("10.0.0.5"), SourcePort: 41000,
			Destination: netip.MustParseAddr("198.51.100.25"), DestinationPort: 587, Verdict: store.Drop, DecidedBy: store.Decider{Kind: "rule", RuleID: smtp.ID}},
	}, Counters: map[string]map[string]hostview.Counter{g.ID: {r.ID: {Packets: 7, Bytes: 700}}}, Log: hostview.LogStats{Received: 2, BufferDrops: 1}}
	if code := raw.observe(t, con.url, obs); code != http.StatusNoContent {
		t.Fatalf("observations: %d", code)
	}
	// Another host's observations are refused.
	obs.HostID = raw2.id
	if code := raw.observe(t, con.url, obs); code != http.StatusForbidden {
		t.Errorf("observations for another host: %d, want 403", code)
	}
	// An agent from before Observations: counters in its report.
	if code := raw2.report(t, con.url+hostview.ReportPath(raw2.id), hostview.Report{HostID: raw2.id, Heartbeat: true,
		Counters: map[string]map[string]hostview.Counter{g.ID: {r.ID: {Packets: 3, Bytes: 300}}}}); code != http.StatusNoContent {
		t.Fatalf("report: %d", code)
	}

	var page store.LogPage
	waitFor(t, "the entries in the store", func() bool {
		page, _ = db.LogEntries(ctx, org.ID, zone, g.ID, store.LogQuery{})
		return len(page.Entries) == 2
	})
	e := page.Entries[0]
	if e.Host != "h1" || e.ServerID != s1.ID || e.DecidedBy != (store.Decider{Kind: "rule", RuleID: r.ID, Position: 2}) || !e.Time.Equal(at) {
		t.Errorf("entry %+v", e)
	}
	if d := page.Entries[1].DecidedBy; d != (store.Decider{Kind: "smtp", RuleID: smtp.ID, Position: 3}) || page.Entries[1].ServerID != s1.ID {
		t.Errorf("SMTP entry %+v", page.Entries[1])
	}
	waitFor(t, "the counters of both hosts", func() bool {
		c, _ := db.GroupCounters(ctx, org.ID, zone, g.ID)
		return c[r.ID].Packets == 10 && c[r.ID].Bytes == 1000
	})
	if st := con.c.LogStats(); st.Received != 2 || st.BufferDrops != 1 || st.Stored != 2 {
		t.Errorf("log stats %+v", st)
	}
	if tr := con.c.Traffic(); tr.Observations != 1 {
		t.Errorf("%d observations counted, want 1 (the refused one is not)", tr.Observations)
	}
}

// counting is a preview backend whose kernel counted 5 packets of each
// group's inbound default policy: what an agent reads and sends.
type counting struct{ enforcer.Backend }

func (c counting) GroupCounters(_ context.Context, groups ...enforcer.GroupChains) (map[string]map[string]enforcer.Counter, error) {
	out := map[string]map[string]enforcer.Counter{}
	for _, g := range groups {
		out[g.GroupID] = map[string]enforcer.Counter{enforcer.TagDefaultIn: {Packets: 5, Bytes: 500}}
	}
	return out, nil
}

// TestAgentObservesOlderConsole: the agent sends its counters as
// Observations to a console that takes them; to a console from before them
// (404), it goes on following it, and its counters arrive with its
// heartbeat reports.
func TestAgentObservesOlderConsole(t *testing.T) {
	for _, older := range []bool{false, true} {
		name := map[bool]string{false: "current console", true: "older console"}[older]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := openDB(t)
			con := startConsole(t, db, consoleOpts{})
			url := con.url
			var refused atomic.Int64
			if older {
				url = olderEndpoint(t, con, &refused)
			}
			_, token := must2(t)(fleet.CreateHost(ctx, db, "h1", 0))
			f := newFixture(t, db, "h1")
			startAgent(t, agent.Config{Consoles: []string{url}, JoinToken: token, StateDir: t.TempDir(),
				Backend: counting{enforcer.NewPreview("test")}})
			took := waitFor(t, "the agent's counters in the store", func() bool {
				c, _ := db.GroupCounters(ctx, f.org, zone, f.group.ID)
				return c[enforcer.TagDefaultIn].Packets == 5
			})
			t.Logf("%s: counters kept %s after the agent started", name, took)
			if older {
				waitFor(t, "the agent trying Observations", func() bool { return refused.Load() > 0 })
				time.Sleep(300 * time.Millisecond)
				if n := refused.Load(); n != 1 {
					t.Errorf("the agent tried Observations %d times, want once per session", n)
				}
			} else {
				waitFor(t, "Observations received", func() bool { return con.c.Traffic().Observations > 0 })
			}
			if st := con.hostStatus(t, "h1"); st.State != fleet.HostReady {
				t.Errorf("h1 is %s", st.State)
			}
		})
	}
}

// olderEndpoint serves con's agents' endpoint as a console from before
// Observations did: that path unknown (404). It returns its URL.
func olderEndpoint(t *testing.T, con *console, refused *atomic.Int64) string {
	t.Helper()
	h := con.c.AgentHandler()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{TLSConfig: con.c.AgentTLSConfig([]string{"127.0.0.1"}),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/observations") {
				refused.Add(1)
				http.NotFound(w, r)
				return
			}
			h.ServeHTTP(w, r)
		})}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}
