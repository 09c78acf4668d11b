//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/internal/netnstest"
)

// Confirm or roll back, with real packets (issue 16). `rampart serve
// --enforcer nftables` runs in a namespace ("host") for a local server;
// the test's own traffic is the client namespace's connections to
// openPort on the host, over a veth pair. A change that cuts it off is
// made with X-Rampart-Confirm-Within: 3; the API is reached over the
// host's loopback, which the enforcer never filters, so that the test can
// still confirm, or see the change refused, while its traffic is dropped.

// waitTraffic polls the client's connection to openPort until it passes
// (flows) or is dropped (!flows), failing the test at deadline.
func (h *enforcedHost) waitTraffic(t *testing.T, flows bool, deadline time.Time, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := h.connect(openPort)
		if (err == nil) == flows {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: client -> %s:%d still %v after %s\nserver log:\n%s", what, hostAddr, openPort, err,
				time.Since(start).Round(time.Millisecond), h.srv.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lastEvent is the newest entry of the group's audit log.
func (h *enforcedHost) lastEvent(t *testing.T) (action, actor string) {
	t.Helper()
	var body struct {
		Events []struct{ Action, Actor string }
	}
	code, _, raw := h.srv.apiWith(t, http.MethodGet, groupPath(h.group.ID)+"/events?per_page=1", h.tok.SecretKey, nil, nil)
	if code != http.StatusOK || json.Unmarshal(raw, &body) != nil || len(body.Events) == 0 {
		t.Fatalf("events: %d %s", code, raw)
	}
	return body.Events[0].Action, body.Events[0].Actor
}

// cutOff makes a change that drops the client's traffic to openPort, to
// be confirmed within 3 s, and returns when it was made and the pending
// version.
func (h *enforcedHost) cutOff(t *testing.T) (time.Time, string) {
	t.Helper()
	made := time.Now()
	code, hdr, raw := h.srv.apiWith(t, http.MethodPatch, groupPath(h.group.ID), h.tok.SecretKey,
		map[string]any{"inbound_default_policy": "drop"}, map[string]string{"X-Rampart-Confirm-Within": "3"})
	if code != http.StatusOK || hdr.Get("X-Rampart-Pending-Version") == "" || !strings.Contains(string(raw), `"pending_confirmation"`) {
		t.Fatalf("PATCH with X-Rampart-Confirm-Within: 3 = %d %v %s", code, hdr, raw)
	}
	// The change reaches the kernel before its deadline: the traffic stops.
	h.waitTraffic(t, false, made.Add(3*time.Second), "after the change, before its deadline")
	return made, hdr.Get("X-Rampart-Pending-Version")
}

// TestConfirmOrRollBackKernel: a change that blocks the test's own
// traffic is reverted by the server by itself (packets flow again within
// 10 s, and the roll-back is audited); a second change while one is
// pending answers 409; a confirmed change stays; a pending change
// survives a restart of the console and is still rolled back.
func TestConfirmOrRollBackKernel(t *testing.T) {
	netnstest.RequireRoot(t)
	h := startEnforcedHost(t)
	g := groupPath(h.group.ID)

	t.Run("rolled back by itself", func(t *testing.T) {
		made, version := h.cutOff(t)
		code, _, raw := h.srv.apiWith(t, http.MethodPost, g+"/rules", h.tok.SecretKey,
			map[string]any{"direction": "inbound", "action": "accept", "protocol": "TCP", "ip_range": "0.0.0.0/0", "dest_port_from": openPort}, nil)
		if code != http.StatusConflict || !strings.Contains(string(raw), "version "+version+" of this security group awaits confirmation") {
			t.Errorf("a second change while pending = %d %s, want 409 naming version %s", code, raw, version)
		}
		h.waitTraffic(t, true, made.Add(10*time.Second), "after the deadline")
		t.Logf("packets flow again %s after the change (deadline 3 s)", time.Since(made).Round(10*time.Millisecond))
		if action, actor := h.lastEvent(t); action != "rollback" || actor != "system" {
			t.Errorf("last event = %s by %s, want a rollback by system", action, actor)
		}
		if got := h.srv.group(t, h.tok, h.group.ID); got.InboundDefaultPolicy != "accept" {
			t.Errorf("inbound default policy after the roll-back = %s", got.InboundDefaultPolicy)
		}
		h.expectPorts(t, "after the roll-back", true)
	})

	t.Run("confirmed stays", func(t *testing.T) {
		made, version := h.cutOff(t)
		code, _, raw := h.srv.apiWith(t, http.MethodPost, g+"/confirm", h.tok.SecretKey, map[string]any{"version": atoi(t, version)}, nil)
		if code != http.StatusOK {
			t.Fatalf("confirm = %d %s", code, raw)
		}
		time.Sleep(time.Until(made.Add(4500 * time.Millisecond)))
		if err := h.connect(openPort); err == nil {
			t.Fatalf("1.5 s after the deadline of a confirmed change, the client's traffic passes again")
		}
		if action, _ := h.lastEvent(t); action != "confirm" {
			t.Errorf("last event = %s, want the confirmation", action)
		}
		// Put it back, without a deadline.
		var body struct {
			Versions []struct{ Version int }
		}
		_, _, raw = h.srv.apiWith(t, http.MethodGet, g+"/versions?per_page=2", h.tok.SecretKey, nil, nil)
		if json.Unmarshal(raw, &body) != nil || len(body.Versions) != 2 {
			t.Fatalf("versions: %s", raw)
		}
		if code, _, raw := h.srv.apiWith(t, http.MethodPost, fmt.Sprintf("%s/versions/%d/revert", g, body.Versions[1].Version), h.tok.SecretKey, nil, nil); code != http.StatusOK {
			t.Fatalf("revert = %d %s", code, raw)
		}
		h.waitTraffic(t, true, time.Now().Add(10*time.Second), "after the revert")
	})

	t.Run("survives a restart", func(t *testing.T) {
		made, _ := h.cutOff(t)
		h.stopServe(t)
		time.Sleep(time.Until(made.Add(4 * time.Second)))
		if err := h.connect(openPort); err == nil {
			t.Fatal("the traffic passes again while no console runs: nothing should have rolled back")
		}
		restarted := time.Now()
		srv, err := startServer(serverOptions{
			name: t.Name() + "-again", dir: filepath.Dir(h.srv.db), enforcer: "nftables",
			prefix: []string{"ip", "netns", "exec", h.host}, client: h.srv.client,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.stop)
		h.srv = srv
		h.waitTraffic(t, true, restarted.Add(10*time.Second), "after the console restarted")
		t.Logf("packets flow again %s after the restart", time.Since(restarted).Round(10*time.Millisecond))
		if action, actor := h.lastEvent(t); action != "rollback" || actor != "system" {
			t.Errorf("last event = %s by %s, want a rollback by system", action, actor)
		}
	})
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return n
}
