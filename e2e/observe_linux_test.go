//go:build linux

package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"
)

// TestPacketLogLive, issue 17 through `rampart serve` as it runs (its
// NFLOG reader, its store writer, --log-file): the group's rule that drops
// closedPort is made to log (the API's Rampart field "log"); a packet the
// client sends to it appears, while the group's page is open, in its live
// packet log naming the rule, and the rule's counter moves on the page;
// the entry is in the API and in the log file.
func TestPacketLogLive(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "packets.jsonl")
	h := startEnforcedHostWith(t, []string{"--log-file", logFile})
	g := groupPath(h.group.ID)
	rules := h.srv.rules(t, h.tok, h.group.ID, "inbound")
	if len(rules) != 1 {
		t.Fatalf("rules %+v", rules)
	}
	rule := rules[0]
	if code := h.srv.api(t, http.MethodPatch, g+"/rules/"+rule.ID, h.tok.SecretKey, map[string]any{"log": true}, nil); code != http.StatusOK {
		t.Fatalf("PATCH log: %d", code)
	}
	h.srv.waitState(t, h.tok, h.group.ID, "available")

	// The rule counted one packet already: startEnforcedHost checked
	// that it drops.
	var p *tab
	cell := `#rule-` + rule.ID + ` [data-field="packets"]`
	if b := namespaceBrowser(t, h.host); b != nil {
		p = newTabIn(t, h.srv, b)
		p.signIn(h.account)
		p.openGroup(h.group, "group-before")
		if err := expect.Locator(p.Locator(cell)).ToHaveText("1"); err != nil {
			t.Errorf("the rule's counter before: %v", err)
		}
	}
	sent := time.Now()
	if err := h.connect(closedPort); err == nil {
		t.Fatalf("client -> %s:%d answered, want it dropped", hostAddr, closedPort)
	}
	if p != nil {
		row := p.Locator(`#log-rows tr[data-verdict="drop"]`).First()
		if err := expect.Locator(row).ToContainText(clientAddr); err != nil {
			t.Fatalf("the live log shows no entry from the client: %v", err)
		}
		t.Logf("the entry was on the open page %s after the packet", time.Since(sent).Round(10*time.Millisecond))
		link := row.GetByRole(*playwright.AriaRoleLink, playwright.LocatorGetByRoleOptions{Name: "Rule 1"})
		if href, err := link.GetAttribute("href"); err != nil || href != "#rule-"+rule.ID {
			t.Errorf("the entry's link to its rule: %q %v", href, err)
		}
		if err := expect.Locator(p.Locator(cell)).ToHaveText("2"); err != nil {
			t.Errorf("the rule's counter did not move on the open page: %v", err)
		}
		p.see("packet-log-live")
	}

	var page struct {
		Entries []struct {
			Source, Verdict string
			DecidedBy       struct {
				Kind   string
				RuleID string `json:"rule_id"`
			} `json:"decided_by"`
		}
	}
	if code := h.srv.api(t, http.MethodGet, g+"/logs?verdict=drop", h.tok.SecretKey, nil, &page); code != http.StatusOK ||
		len(page.Entries) == 0 || page.Entries[0].Source != clientAddr || page.Entries[0].DecidedBy.RuleID != rule.ID {
		t.Errorf("logs: %d %+v", code, page)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		raw, _ := os.ReadFile(logFile)
		line, _, _ := strings.Cut(string(raw), "\n")
		var e struct {
			GroupID   string `json:"group_id"`
			DecidedBy struct {
				RuleID string `json:"rule_id"`
			} `json:"decided_by"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.GroupID == h.group.ID && e.DecidedBy.RuleID == rule.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("--log-file holds %q", raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if fi, err := os.Stat(logFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("--log-file: %v %v, want mode 0600", fi.Mode(), err)
	}
}
