package fleet_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"reflect"
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

const zone = "fr-par-1"

// fixture is an organization with a group holding a server on host h1.
type fixture struct {
	org   string
	group store.Group
}

func newFixture(t *testing.T, db *store.DB, host string) fixture {
	t.Helper()
	ctx := context.Background()
	org := must[store.Organization](t)(db.EnsureOrganization(ctx, "acme"))
	g := must[store.Group](t)(db.CreateGroup(ctx, org.ID, zone, store.GroupInput{Name: "web", Stateful: true,
		InboundDefaultPolicy: store.Drop, OutboundDefaultPolicy: store.Accept}))
	must[store.Server](t)(db.CreateServer(ctx, org.ID, zone, store.ServerInput{Name: "vm", Interface: "vm1",
		SecurityGroupID: g.ID, Host: host}))
	return fixture{org: org.ID, group: g}
}

// group reads the group again (its generation moves with every change).
func (f fixture) current(t *testing.T, db *store.DB) store.Group {
	t.Helper()
	return must[store.Group](t)(db.Group(context.Background(), f.org, zone, f.group.ID))
}

func (c *console) groupState(t *testing.T, g store.Group) (store.SyncState, string) {
	return c.c.GroupState(g.ID, g.Generation)
}

// TestAgentFollowsTheConsole: an agent enrols with its join token, holds
// its host's view, reports, and the group's state follows it: available
// once applied, syncing_error once the host is lost, available again after
// a restart from the state directory alone (no token).
func TestAgentFollowsTheConsole(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	con := startConsole(t, db, consoleOpts{})
	h1, token := must2(t)(fleet.CreateHost(ctx, db, "h1", 0))
	if st := con.hostStatus(t, "h1"); st.State != fleet.HostPending {
		t.Fatalf("a host never enrolled is %s, want pending", st.State)
	}
	f := newFixture(t, db, "h1")
	dir := t.TempDir()
	a := startAgent(t, agent.Config{Consoles: []string{con.url}, JoinToken: token, StateDir: dir})
	took := waitFor(t, "the group available on h1", func() bool {
		st, _ := con.groupState(t, f.current(t, db))
		return st == store.Available
	})
	t.Logf("enrolment to available: %s", took)
	if a.a.HostID() != h1.ID {
		t.Fatalf("agent host = %s, want %s", a.a.HostID(), h1.ID)
	}
	waitFor(t, "h1 ready", func() bool { return con.hostStatus(t, "h1").State == fleet.HostReady })

	// A rule: the group moves, the agent follows.
	rule := must[store.Rule](t)(db.CreateRule(ctx, f.org, zone, f.group.ID, store.RuleInput{Direction: store.Inbound,
		Protocol: store.TCP, Action: store.Accept, IPRange: "10.0.0.0/8", DestPortFrom: ptr(22)}))
	g := f.current(t, db)
	if st, _ := con.groupState(t, g); st == store.Available {
		// It may be, if everything was quick; never before the agent
		// holds it, which is what is checked next.
		t.Log("available at once")
	}
	took = waitFor(t, "the rule on h1", func() bool {
		st, _ := con.groupState(t, g)
		return st == store.Available && strings.Contains(a.a.Reconciler().GroupText(g.ID), rule.ID)
	})
	t.Logf("rule committed to available (agent applied and reported): %s", took)
	gh := con.c.GroupHosts(g.ID, g.Generation)
	if len(gh) != 1 || gh[0].HostName != "h1" || gh[0].State != store.Available {
		t.Fatalf("GroupHosts = %+v, want h1 available", gh)
	}
	// The console's own host does not hold the group: its kernel does not.
	if text := con.c.GroupText(g.ID); !strings.Contains(text, rule.ID) {
		t.Errorf("GroupText of a group on another host:\n%s", text)
	}

	// The agent stops: the host is lost, the group in error naming it.
	a.stop()
	took = waitFor(t, "h1 lost", func() bool { return con.hostStatus(t, "h1").State == fleet.HostLost })
	t.Logf("agent stopped to lost: %s (lost after %s)", took, testLostAfter)
	st, detail := con.groupState(t, g)
	if st != store.SyncingError || !strings.Contains(detail, "h1") || !strings.Contains(detail, "lost") {
		t.Fatalf("group with its host lost: %s %q", st, detail)
	}

	// Restarted from its state directory alone.
	a = startAgent(t, agent.Config{StateDir: dir})
	waitFor(t, "h1 ready again", func() bool { return con.hostStatus(t, "h1").State == fleet.HostReady })
	waitFor(t, "the group available again", func() bool {
		st, _ := con.groupState(t, f.current(t, db))
		return st == store.Available
	})
	if a.a.Generation() == 0 {
		t.Fatal("restarted agent holds no view")
	}
}

func ptr[T any](v T) *T { return &v }

func must2(tb testing.TB) func(store.Host, string, error) (store.Host, string) {
	return func(h store.Host, s string, err error) (store.Host, string) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return h, s
	}
}

// TestScope: a host's credential reads only its own view and reports only
// for itself; a join token works once and not after it expired; a removed
// host is refused and its stream closed; a certificate replaced is
// refused; a certificate of another CA does not get through the handshake.
func TestScope(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	con := startConsole(t, db, consoleOpts{})
	_, tok1 := must2(t)(fleet.CreateHost(ctx, db, "h1", 0))
	h2, tok2 := must2(t)(fleet.CreateHost(ctx, db, "h2", 0))
	r1 := must[*rawHost](t)(enrolRaw(t, con.url, tok1))
	must[*rawHost](t)(enrolRaw(t, con.url, tok2))

	t.Run("another host's view and reports", func(t *testing.T) {
		tests := []struct {
			name string
			do   func() int
			want int
		}{
			{"own view", func() int { return r1.get(t, con.url+hostview.ViewPath(r1.id)+"?generation=999999") }, http.StatusOK},
			{"other view", func() int { return r1.get(t, con.url+hostview.ViewPath(h2.ID)) }, http.StatusForbidden},
			{"own report", func() int {
				return r1.report(t, con.url+hostview.ReportPath(r1.id), hostview.Report{HostID: r1.id, Heartbeat: true})
			}, http.StatusNoContent},
			{"other's report path", func() int {
				return r1.report(t, con.url+hostview.ReportPath(h2.ID), hostview.Report{HostID: h2.ID})
			}, http.StatusForbidden},
			{"other's report body", func() int {
				return r1.report(t, con.url+hostview.ReportPath(r1.id), hostview.Report{HostID: h2.ID})
			}, http.StatusForbidden},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := tt.do(); got != tt.want {
					t.Fatalf("status %d, want %d", got, tt.want)
				}
			})
		}
	})

	t.Run("join token once", func(t *testing.T) {
		if _, err := enrolRaw(t, con.url, tok1); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("second enrolment with one token: %v, want 401", err)
		}
	})

	t.Run("join token expires", func(t *testing.T) {
		_, tok := must2(t)(fleet.CreateHost(ctx, db, "h-late", 300*time.Millisecond))
		time.Sleep(400 * time.Millisecond)
		if _, err := enrolRaw(t, con.url, tok); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("enrolment with an expired token: %v, want 401", err)
		}
	})

	t.Run("certificate replaced", func(t *testing.T) {
		_, tok := must2(t)(fleet.NewJoinToken(ctx, db, "h2", 0))
		old := must[*rawHost](t)(enrolRaw(t, con.url, tok)) // h2 again
		_, tok = must2(t)(fleet.NewJoinToken(ctx, db, "h2", 0))
		must[*rawHost](t)(enrolRaw(t, con.url, tok))
		if got := old.get(t, con.url+hostview.ViewPath(h2.ID)); got != http.StatusUnauthorized {
			t.Fatalf("replaced certificate: %d, want 401", got)
		}
	})

	t.Run("removed host", func(t *testing.T) {
		_, tok := must2(t)(fleet.CreateHost(ctx, db, "h3", 0))
		r3 := must[*rawHost](t)(enrolRaw(t, con.url, tok))
		frames, ended := r3.stream(t, con.url+hostview.ViewPath(r3.id))
		select {
		case f := <-frames:
			if f.Type != hostview.FrameHeartbeat {
				t.Fatalf("first frame %s, want a heartbeat", f.Type)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no first frame")
		}
		// As `rampart host remove` does: another process, whose change
		// wakes no watcher of the console's.
		cli, err := store.Open(ctx, dbPath(t, db), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		if _, err := cli.RemoveHost(ctx, "h3"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		select {
		case <-ended:
			t.Logf("stream closed %s after the removal", time.Since(start))
		case <-time.After(10 * time.Second):
			t.Fatal("the removed host's stream is still open after 10 s")
		}
		if got := r3.get(t, con.url+hostview.ViewPath(r3.id)); got != http.StatusUnauthorized {
			t.Fatalf("removed host: %d, want 401", got)
		}
	})

	t.Run("another CA", func(t *testing.T) {
		// A certificate naming h1, from a CA of its own making.
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "evil"}, IsCA: true,
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
		ca, _ := x509.ParseCertificate(caDER)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: r1.id},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, _ := x509.CreateCertificate(rand.Reader, leaf, ca, key.Public(), caKey)
		evil := &rawHost{id: r1.id, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caPool: r1.caPool}
		resp, err := evil.client().Get(con.url + hostview.ViewPath(r1.id))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("a certificate of another CA got %d, want a failed handshake", resp.StatusCode)
		}
		// And without any certificate: 401.
		anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r1.caPool}}}
		resp, err = anon.Get(con.url + hostview.ViewPath(r1.id))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("no certificate: %d, want 401", resp.StatusCode)
		}
	})
}

// TestAgentRefusesAnotherConsole: an agent enrols only with the console
// whose CA its token pins, and once enrolled follows no console of another
// CA.
func TestAgentRefusesAnotherConsole(t *testing.T) {
	ctx := context.Background()
	dbA, dbB := openDB(t), openDB(t)
	a := startConsole(t, dbA, consoleOpts{})
	b := startConsole(t, dbB, consoleOpts{})
	_, tokA := must2(t)(fleet.CreateHost(ctx, dbA, "h1", 0))
	must2(t)(fleet.CreateHost(ctx, dbB, "h1", 0))

	// A's token, B's console (same host name there): refused before the
	// secret is sent.
	ag, err := agent.New(agent.Config{Consoles: []string{b.url}, JoinToken: tokA, StateDir: t.TempDir(), Backend: enforcer.NewPreview("t")})
	if err != nil {
		t.Fatal(err)
	}
	if err := ag.Run(ctx); err == nil || !strings.Contains(err.Error(), "pin") {
		t.Fatalf("enrolment with another console: %v, want a pin mismatch", err)
	}

	// Enrolled with A, pointed at B: never follows it.
	dir := t.TempDir()
	r := startAgent(t, agent.Config{Consoles: []string{a.url}, JoinToken: tokA, StateDir: dir})
	waitFor(t, "h1 ready on A", func() bool { return a.hostStatus(t, "h1").State == fleet.HostReady })
	r.stop()
	r = startAgent(t, agent.Config{Consoles: []string{b.url}, StateDir: dir})
	time.Sleep(time.Second)
	if c := r.a.Console(); c != "" {
		t.Fatalf("the agent follows %s, a console of another CA", c)
	}
	if st := b.hostStatus(t, "h1"); st.State != fleet.HostPending {
		t.Fatalf("B's h1 is %s", st.State)
	}
}

// TestRenewal: with certificates of a few seconds, the agent renews its
// own before they expire and stays connected; the old one is refused; a
// renewal asked again with the old certificate and the same key gets the
// same certificate, with another key nothing.
func TestRenewal(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	const life = 3 * time.Second
	con := startConsole(t, db, consoleOpts{certLifetime: life})
	h1, token := must2(t)(fleet.CreateHost(ctx, db, "h1", 0))
	f := newFixture(t, db, "h1")
	startAgent(t, agent.Config{Consoles: []string{con.url}, JoinToken: token, StateDir: t.TempDir()})
	waitFor(t, "h1 ready", func() bool { return con.hostStatus(t, "h1").State == fleet.HostReady })
	serials := map[string]bool{}
	start := time.Now()
	waitFor(t, "two renewals", func() bool {
		h := must[store.Host](t)(db.Host(ctx, h1.ID))
		serials[h.CertSerial] = true
		return len(serials) >= 3
	})
	t.Logf("two renewals in %s (lifetime %s)", time.Since(start), life)
	// Past the first certificates' end, the agent is still followed.
	time.Sleep(life / 2)
	waitFor(t, "h1 ready after renewals", func() bool { return con.hostStatus(t, "h1").State == fleet.HostReady })
	must[store.Rule](t)(db.CreateRule(ctx, f.org, zone, f.group.ID, store.RuleInput{Direction: store.Inbound,
		Protocol: store.ICMP, Action: store.Accept, IPRange: "0.0.0.0/0"}))
	waitFor(t, "a change applied after renewals", func() bool {
		st, _ := con.groupState(t, f.current(t, db))
		return st == store.Available
	})

	// By hand: renew, refuse the old, answer a retry the same.
	_, tok := must2(t)(fleet.CreateHost(ctx, db, "h2", 0))
	old := must[*rawHost](t)(enrolRaw(t, con.url, tok))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	first, status := old.renew(t, con.url, key)
	if status != http.StatusOK {
		t.Fatalf("renew: %d", status)
	}
	again, status := old.renew(t, con.url, key)
	if status != http.StatusOK || !bytes.Equal(first, again) {
		t.Fatalf("renewal asked again: %d, same certificate %v", status, bytes.Equal(first, again))
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, status := old.renew(t, con.url, other); status != http.StatusUnauthorized {
		t.Fatalf("renewal of a replaced certificate for another key: %d, want 401", status)
	}
	if got := old.get(t, con.url+hostview.ViewPath(old.id)); got != http.StatusUnauthorized {
		t.Fatalf("the renewed certificate: %d, want 401", got)
	}
	renewed := &rawHost{id: old.id, cert: tls.Certificate{Certificate: [][]byte{first}, PrivateKey: key}, caPool: old.caPool}
	if got := renewed.get(t, con.url+hostview.ViewPath(old.id)+"?generation=99999999"); got != http.StatusOK {
		t.Fatalf("the new certificate: %d, want 200", got)
	}
}

func (h *rawHost) renew(t *testing.T, url string, key *ecdsa.PrivateKey) ([]byte, int) {
	t.Helper()
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	body, _ := json.Marshal(hostview.RenewRequest{CSR: csr})
	resp, err := h.client().Post(url+hostview.CertificatePath(h.id), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rr hostview.RenewResponse
	json.NewDecoder(resp.Body).Decode(&rr)
	return rr.Certificate, resp.StatusCode
}

// failing is a preview backend whose applies fail while fail is set.
type failing struct {
	*enforcer.Preview
	fail atomic.Bool
}

func (f *failing) Apply(ctx context.Context, prev, next *enforcer.Ruleset) error {
	if f.fail.Load() {
		return errors.New("the kernel said no")
	}
	return f.Preview.Apply(ctx, prev, next)
}

// TestStates: a failed apply on an agent turns its host to error and the
// group to syncing_error naming the host and the error; a change not
// applied yet is syncing; a group without servers is available.
func TestStates(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	con := startConsole(t, db, consoleOpts{})
	_, token := must2(t)(fleet.CreateHost(ctx, db, "h1", 0))
	f := newFixture(t, db, "h1")
	be := &failing{Preview: enforcer.NewPreview("t")}
	startAgent(t, agent.Config{Consoles: []string{con.url}, JoinToken: token, StateDir: t.TempDir(), Backend: be})
	waitFor(t, "available", func() bool { st, _ := con.groupState(t, f.current(t, db)); return st == store.Available })

	be.fail.Store(true)
	must[store.Rule](t)(db.CreateRule(ctx, f.org, zone, f.group.ID, store.RuleInput{Direction: store.Inbound,
		Protocol: store.ANY, Action: store.Accept, IPRange: "10.0.0.0/8"}))
	g := f.current(t, db)
	waitFor(t, "syncing_error naming h1", func() bool {
		st, detail := con.groupState(t, g)
		return st == store.SyncingError && strings.Contains(detail, "h1") && strings.Contains(detail, "the kernel said no")
	})
	if st := con.hostStatus(t, "h1"); st.State != fleet.HostError || !strings.Contains(st.Detail, "the kernel said no") {
		t.Fatalf("h1 = %s %q, want error", st.State, st.Detail)
	}
	be.fail.Store(false)
	waitFor(t, "available after the retry", func() bool { st, _ := con.groupState(t, g); return st == store.Available })
	waitFor(t, "h1 ready", func() bool { return con.hostStatus(t, "h1").State == fleet.HostReady })

	empty := must[store.Group](t)(db.CreateGroup(ctx, f.org, zone, store.GroupInput{Name: "empty"}))
	waitFor(t, "an empty group available", func() bool { st, _ := con.groupState(t, empty); return st == store.Available })
	if st := con.hostStatus(t, "console"); st.State != fleet.HostReady {
		t.Fatalf("the console's own host is %s %q", st.State, st.Detail)
	}
}

// TestTwoConsoles: two consoles on one database share the CA; an agent
// given both moves to the second when the first stops, and each console
// tells the group's state from the reports the other received.
func TestTwoConsoles(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	a := startConsole(t, db, consoleOpts{hostName: "console-a"})
	db2, err := store.Open(ctx, dbPath(t, db), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	b := startConsole(t, db2, consoleOpts{hostName: "console-b"})
	if a.c.CA().Pin() != b.c.CA().Pin() {
		t.Fatal("two consoles on one database have different CAs")
	}
	_, token := must2(t)(fleet.CreateHost(ctx, db, "h1", 0))
	f := newFixture(t, db, "h1")
	r := startAgent(t, agent.Config{Consoles: []string{a.url, b.url}, JoinToken: token, StateDir: t.TempDir()})
	waitFor(t, "available on A", func() bool { st, _ := a.groupState(t, f.current(t, db)); return st == store.Available })
	took := waitFor(t, "available on B, from the store", func() bool {
		st, _ := b.groupState(t, f.current(t, db2))
		return st == store.Available
	})
	t.Logf("B saw A's report after %s", took)
	if r.a.Console() != a.url {
		t.Fatalf("the agent follows %q, want A", r.a.Console())
	}
	a.stop()
	took = waitFor(t, "the agent on B", func() bool { return r.a.Console() == b.url })
	t.Logf("failover to B: %s", took)
	must[store.Rule](t)(db2.CreateRule(ctx, f.org, zone, f.group.ID, store.RuleInput{Direction: store.Inbound,
		Protocol: store.ANY, Action: store.Accept, IPRange: "10.0.0.0/8"}))
	waitFor(t, "the change through B", func() bool { st, _ := b.groupState(t, f.current(t, db2)); return st == store.Available })
}

// TestHostSource: a host's reconciler reads exactly its part of the
// store, incrementally.
func TestHostSource(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	must[store.Host](t)(db.EnsureHost(ctx, "console"))
	h1, _ := must2(t)(fleet.CreateHost(ctx, db, "h1", 0))
	f := newFixture(t, db, "h1")
	src := fleet.HostSource(db, h1.ID)
	inc := src.(interface {
		SnapshotSince(context.Context, store.Snapshot) (store.Snapshot, error)
	})
	got := must[store.Snapshot](t)(src.Snapshot(ctx))
	for step := range 3 {
		want := must[store.Snapshot](t)(db.Snapshot(ctx)).ForHost(h1.ID)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: the source read\n%+v\nwant\n%+v", step, got, want)
		}
		if len(got.Groups) != 1 || got.Groups[0].ID != f.group.ID {
			t.Fatalf("step %d: groups %+v, want the fixture's", step, got.Groups)
		}
		must[store.Rule](t)(db.CreateRule(ctx, f.org, zone, f.group.ID, store.RuleInput{Direction: store.Inbound,
			Protocol: store.ANY, Action: store.Accept, IPRange: fmt.Sprintf("10.%d.0.0/16", step)}))
		must[store.Group](t)(db.CreateGroup(ctx, f.org, zone, store.GroupInput{Name: fmt.Sprint("elsewhere", step)}))
		got = must[store.Snapshot](t)(inc.SnapshotSince(ctx, got))
	}
}
