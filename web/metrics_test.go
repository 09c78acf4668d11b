package web_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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
