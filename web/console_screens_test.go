package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// TestConsoleScreenshots takes screenshots of the console in headless
// Chromium, signed in through a proxy that adds the session cookie. It
// runs only when RAMPART_SCREENS names the output directory:
//
//	RAMPART_SCREENS=/tmp/screens go test ./web -run ConsoleScreenshots
func TestConsoleScreenshots(t *testing.T) {
	dir := os.Getenv("RAMPART_SCREENS")
	if dir == "" {
		t.Skip("set RAMPART_SCREENS to a directory to take screenshots")
	}
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("no chromium")
	}
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	ctx := context.Background()
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web-frontends",
		Description: "Public web servers behind the load balancer", Stateful: true,
		InboundDefaultPolicy: store.Drop})
	env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "bare-metal-racks", Description: "Stateless, for BareMetal"})
	env.mustServer(t, "fr-par-1", store.ServerInput{Name: "web-01", Interface: "vnet1", Addresses: []string{"192.0.2.11"}, SecurityGroupID: g.ID})
	env.mustServer(t, "fr-par-1", store.ServerInput{Name: "web-02", Interface: "vnet2", Addresses: []string{"192.0.2.12", "2001:db8::12"}, SecurityGroupID: g.ID})
	env.mustServer(t, "fr-par-1", store.ServerInput{Name: "db-01", Interface: "vnet3", Addresses: []string{"192.0.2.20"}})
	for _, r := range []store.RuleInput{
		{Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept, IPRange: "0.0.0.0/0", DestPortFrom: ptr(22)},
		{Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept, IPRange: "0.0.0.0/0", DestPortFrom: ptr(80)},
		{Direction: store.Outbound, Protocol: store.UDP, Action: store.Accept, IPRange: "192.0.2.53", DestPortFrom: ptr(53)},
		{Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept, IPRange: "::/0", DestPortFrom: ptr(443)},
		{Direction: store.Inbound, Protocol: store.ICMP, Action: store.Accept, IPRange: "10.0.0.0/8"},
		{Direction: store.Inbound, Protocol: store.TCP, Action: store.Drop, IPRange: "198.51.100.0/24", DestPortFrom: ptr(8000), DestPortTo: ptr(8999)},
	} {
		if _, err := env.db.CreateRule(ctx, env.org.ID, "fr-par-1", g.ID, r); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // let the reconciler apply

	target, _ := url.Parse(env.ts.URL)
	var cookie string
	for _, c := range b.c.Jar.Cookies(target) {
		cookie += c.Name + "=" + c.Value + "; "
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Cookie", cookie)
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()

	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pages := map[string]string{
		"list":   "/security-groups",
		"create": "/security-groups/new",
		"detail": "/security-groups/" + g.ID + "?zone=fr-par-1",
	}
	sizes := map[int]int{1280: 900, 360: 800}
	heights := map[string]int{"list": 1, "create": 2, "detail": 4}
	for name, path := range pages {
		for w, h := range sizes {
			out := filepath.Join(dir, name+"-"+strconv.Itoa(w)+".png")
			height := h * heights[name]
			if w == 360 {
				height *= 2
			}
			cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
				"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
				"--user-data-dir="+t.TempDir(), "--virtual-time-budget=3000", "--enable-logging=stderr", "--log-level=0",
				"--window-size="+strconv.Itoa(w)+","+strconv.Itoa(height), "--screenshot="+out, front.URL+path)
			logs, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("chromium %s: %v\n%s", name, err, logs)
			}
			// The page's console: CSP violations and script errors show here.
			for _, line := range strings.Split(string(logs), "\n") {
				if strings.Contains(line, "CONSOLE") || strings.Contains(line, "Content Security Policy") {
					t.Errorf("%s: %s", name, line)
				}
			}
			t.Logf("wrote %s", out)
		}
	}
	// Optionally drive the live console with a CDP script (a node file
	// taking the base URL and the group's path), signed out at first.
	if script := os.Getenv("RAMPART_CDP_SCRIPT"); script != "" {
		out, err := exec.Command("node", "--experimental-websocket", script, env.ts.URL,
			"/security-groups/"+g.ID+"?zone=fr-par-1").CombinedOutput()
		t.Logf("%s", out)
		if err != nil {
			t.Fatalf("CDP script: %v", err)
		}
	}
}

func ptr(n int) *int { return &n }
