package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/fleet"
	"github.com/rampart-fw/rampart/internal/testdb"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

func TestMetrics(t *testing.T) {
	env := newTestEnv(t)
	call(t, "POST", env.url+"/instance/v1/zones/fr-par-1/security_groups", `{"name":"m"}`, env.auth())
	call(t, "GET", env.url+"/instance/v1/zones/fr-par-1/security_groups", "", env.auth())
	var body string
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp, err := http.Get(env.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(raw)
		if strings.Contains(body, `rampart_groups{state="available"} 1`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{
		`rampart_http_request_duration_seconds_count{method="POST",route="/instance/v1/zones/:zone/security_groups",status="201"} 1`,
		`rampart_http_request_duration_seconds_count{method="GET",route="/instance/v1/zones/:zone/security_groups",status="200"} 1`,
		`rampart_groups{state="available"} 1`,
		`rampart_enforcer_applies_total`,
		`rampart_enforcer_drift_repairs_total 0`,
		`rampart_enforcer_applied_generation`,
		`rampart_store_generation`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, env.secret) {
		t.Fatal("a secret appears in /metrics")
	}
}

// trafficFleet is a Fleet whose agents' endpoint carried fixed totals.
type trafficFleet struct{ t fleet.Traffic }

func (trafficFleet) Hosts(context.Context) ([]store.HostStatus, error) { return nil, nil }
func (trafficFleet) GroupHosts(string, int64) []store.GroupOnHost      { return nil }
func (f trafficFleet) Traffic() fleet.Traffic                          { return f.t }

// TestMetricsAgents: a console serving agents shows in /metrics how many
// follow it and what their views and reports cost, as Console.Traffic
// counts them (a benchmark reads them from a serve process).
func TestMetricsAgents(t *testing.T) {
	db, err := store.Open(context.Background(), testdb.DSN(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f := trafficFleet{fleet.Traffic{Streams: 3, Frames: 17, FrameBytes: 4242, Reports: 5, ReportBytes: 999}}
	srv, err := web.New(web.Config{Store: db, Enforcer: enforcer.NewReconciler(db, enforcer.NewPreview("test"), nil),
		Logger: slog.New(slog.DiscardHandler), Fleet: f})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		"rampart_agent_streams 3\n", "rampart_agent_frames_total 17\n", "rampart_agent_frame_bytes_total 4242\n",
		"rampart_agent_reports_total 5\n", "rampart_agent_report_bytes_total 999\n",
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
