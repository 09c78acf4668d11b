//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"
	"golang.org/x/sys/unix"
)

// TestSyncStateEnforcing is flow 10 where the kernel enforces: the server
// runs with --enforcer nftables inside a network namespace the test makes
// (so the host's own ruleset is never touched), a changed group with a
// server on the console's host reaches "available", and its rules are in
// the namespace's kernel. A second
// Chromium runs inside the namespace too, to see what a person sees there.
func TestSyncStateEnforcing(t *testing.T) {
	needNamespaces(t, "the enforcing flow")
	checkHostFirewall(t)

	ns := fmt.Sprintf("rampart-e2e-%d", os.Getpid())
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", ns, err, out)
		}
	})
	run(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: dialInNetns(filepath.Join("/run/netns", ns)), DisableKeepAlives: true,
	}}
	srv, err := startServer(serverOptions{
		name: "nftables", dir: t.TempDir(), enforcer: "nftables",
		prefix: []string{"ip", "netns", "exec", ns}, client: client,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)

	var health struct{ Enforcer string }
	if code := srv.api(t, http.MethodGet, "/healthz", "", nil, &health); code != http.StatusOK || health.Enforcer != "nftables" {
		t.Fatalf("/healthz = %d %+v, want 200 with enforcer nftables", code, health)
	}

	a := srv.newAccount(t, "enforcing")
	tok := srv.newToken(t, a.Org)
	g := srv.createGroup(t, tok, "enforced", true)
	srv.addRule(t, tok, g.ID, "inbound", 22)
	// The console's kernel holds the groups of the servers on its host.
	servers := "/instance/v1/zones/fr-par-1/servers"
	if code := srv.api(t, http.MethodPost, servers, tok.SecretKey, map[string]any{
		"name": "vm-e2e", "project": tok.ProjectID, "interface": "vnet-e2e", "security_group": g.ID,
	}, nil); code != http.StatusCreated {
		t.Fatalf("POST %s = %d, want 201", servers, code)
	}
	srv.waitState(t, tok, g.ID, "available")

	out := run(t, "ip", "netns", "exec", ns, "nft", "list", "table", "inet", "rampart")
	chain := "sg_" + strings.ReplaceAll(g.ID, "-", "") + "_in"
	if !strings.Contains(out, chain) || !strings.Contains(out, "dport 22") {
		t.Errorf("the namespace's inet rampart table lacks chain %s with dport 22:\n%s", chain, out)
	}

	// What a person sees: a Chromium started inside the namespace through
	// a wrapper (the driver talks to it over a pipe, not the network).
	if b := namespaceBrowser(t, ns); b != nil {
		p := newTabIn(t, srv, b)
		p.signIn(a)
		p.visible(p.text("Enforcing with nftables."), "the enforcing banner")
		p.openGroup(g, "group")
		p.preset("HTTPS")
		p.click(p.button("Add rule"), "Add rule")
		p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 22", "2 Accept TCP 0.0.0.0/0 443")
		p.expectState(g, "In sync")
		p.see("in-sync")
		srv.waitState(t, tok, g.ID, "available")
	}
}

// needNamespaces skips t, or fails it under RAMPART_REQUIRE_ALL=1, unless
// the machine has what running the enforcer in a network namespace and
// looking at its ruleset takes: root, ip and nft. It is requireRoot's rule
// in enforcer/netns_test.go: a kernel test never silently vanishes in CI,
// nor does a part of one.
func needNamespaces(t *testing.T, what string) {
	t.Helper()
	var why string
	if os.Geteuid() != 0 {
		why = "not root (network namespaces need it)"
	} else {
		for _, bin := range []string{"ip", "nft"} {
			if _, err := exec.LookPath(bin); err != nil {
				why = bin + " is not installed (apt-get install -y iproute2 nftables, or make deps as root)"
				break
			}
		}
	}
	switch {
	case why == "":
	case requireAll:
		t.Fatalf("RAMPART_REQUIRE_ALL=1 but %s: %s cannot run", why, what)
	default:
		t.Skipf("skipping %s: %s", what, why)
	}
}

// namespaceBrowser launches Chromium inside ns, closed when t ends. On a
// machine without a browser it returns nil: the API checks above stand.
func namespaceBrowser(t *testing.T, ns string) playwright.Browser {
	t.Helper()
	if suite.missing != "" && !requireAll {
		t.Logf("not looking at the enforcing console: %s", suite.missing)
		return nil
	}
	needBrowser(t)
	wrapper := filepath.Join(t.TempDir(), "chromium-in-netns")
	script := "#!/bin/sh\nexec ip netns exec " + ns + " " + chromiumPath + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := suite.pw.Chromium.Launch(playwright.BrowserTypeLaunchOptions{
		ExecutablePath: playwright.String(wrapper),
		Args:           chromiumArgs,
		Headless:       playwright.Bool(true),
	})
	if err != nil {
		t.Fatalf("launch Chromium in %s: %v", ns, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// dialInNetns dials from inside the network namespace at path.
func dialInNetns(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return inNetns(path, func() (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		})
	}
}

// inNetns runs f on a thread that joined the network namespace at path;
// sockets f makes stay there. The thread stays locked and so is discarded
// when the goroutine ends, never going back to the pool in the wrong
// namespace.
func inNetns[T any](path string, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var zero T
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{zero, fmt.Errorf("open %s: %w", path, err)}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{zero, fmt.Errorf("setns %s: %w", path, err)}
			return
		}
		v, err := f()
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}

// run runs argv and returns its output, failing t if it fails.
func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}
