//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Finding 17 of issue 11: the README says that stopping `serve` leaves the
// ruleset in force (fail closed) and that `rampart enforcer remove` deletes
// the inet rampart table and nothing else. These tests show both with
// packets, in two network namespaces they make: "host", where rampart
// serves and enforces for a local server, and "client", which connects to
// it over a veth pair.

const (
	hostAddr   = "10.98.0.1" // the host's end of the veth pair
	clientAddr = "10.98.0.2"
	openPort   = 7008 // accepted by the group's default inbound policy
	closedPort = 7007 // dropped by the group's one rule
)

// enforcedHost is a namespace where `rampart serve --enforcer nftables`
// runs for a local server whose group drops closedPort.
type enforcedHost struct {
	host, client string // namespace names
	srv          *server
	tok          apiToken
	group        apiGroup // the local server's group
	account      account  // a user of the group's organization
}

// TestServeStopKeepsRulesetInForce: after SIGTERM, serve exits cleanly,
// the table is still there, unchanged, and packets are still dropped.
func TestServeStopKeepsRulesetInForce(t *testing.T) {
	h := startEnforcedHost(t)
	before := h.nft(t, "--stateless", "list", "table", "inet", "rampart")

	h.stopServe(t)
	h.expectPorts(t, "after serve stopped", true)
	if after := h.nft(t, "--stateless", "list", "table", "inet", "rampart"); after != before {
		t.Errorf("table inet rampart changed when serve stopped (- before, + after):\n%s", lineDiff(before, after))
	}
	// Still dropped a while later: nothing is left to take it away, but a
	// slow teardown would show here.
	time.Sleep(500 * time.Millisecond)
	h.expectPorts(t, "half a second after serve stopped", true)
}

// TestEnforcerRemoveDeletesOnlyItsTable: `rampart enforcer remove`
// deletes table inet rampart, after which packets pass again, and leaves a
// table that was there before (with a rule) byte for byte as it was.
func TestEnforcerRemoveDeletesOnlyItsTable(t *testing.T) {
	h := startEnforcedHost(t, "add table inet other; "+
		"add chain inet other input { type filter hook input priority 10; policy accept; }; "+
		"add rule inet other input ip saddr 192.0.2.99 tcp dport 7009 drop")
	h.stopServe(t)
	other := h.nft(t, "list", "table", "inet", "other")

	out := run(t, "ip", "netns", "exec", h.host, suite.bin, "enforcer", "remove")
	if !strings.Contains(out, "removed table inet rampart") {
		t.Errorf("rampart enforcer remove said %q", out)
	}
	if err := runErr("ip", "netns", "exec", h.host, "nft", "list", "table", "inet", "rampart"); err == nil {
		t.Errorf("table inet rampart is still there after rampart enforcer remove:\n%s", h.nft(t, "list", "ruleset"))
	}
	if got, err := output([]string{"ip", "netns", "exec", h.host}, "nft", "list", "table", "inet", "other"); err != nil {
		t.Fatalf("rampart enforcer remove deleted table inet other too: %v", err)
	} else if got != other {
		t.Errorf("rampart enforcer remove changed table inet other (- before, + after):\n%s", lineDiff(other, got))
	}
	if ruleset := h.nft(t, "list", "ruleset"); ruleset != other {
		t.Errorf("after rampart enforcer remove the ruleset is not table inet other alone (- that table, + ruleset):\n%s", lineDiff(other, ruleset))
	}
	h.expectPorts(t, "after rampart enforcer remove", false)
}

// startEnforcedHost makes the two namespaces, runs setup (an nft script,
// if any) in the host, and starts serve there with a local server whose
// group accepts inbound traffic by default and drops closedPort. It
// returns once the kernel drops closedPort and passes openPort.
func startEnforcedHost(t *testing.T, setup ...string) *enforcedHost {
	t.Helper()
	return startEnforcedHostWith(t, nil, setup...)
}

// startEnforcedHostWith is startEnforcedHost with more arguments of serve.
func startEnforcedHostWith(t *testing.T, extra []string, setup ...string) *enforcedHost {
	t.Helper()
	needNamespaces(t, "the serve and enforcer remove lifecycle")
	checkHostFirewall(t)
	h := &enforcedHost{host: newNetns(t, "host"), client: newNetns(t, "client")}
	// No duplicate address detection: the links' IPv6 addresses are final
	// at once. A browser in the namespace would otherwise see them change
	// a moment later and fail what it was loading (ERR_NETWORK_CHANGED).
	for _, ns := range []string{h.host, h.client} {
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	run(t, "ip", "-n", h.host, "link", "add", "vc", "type", "veth", "peer", "name", "eth0", "netns", h.client)
	run(t, "ip", "-n", h.host, "addr", "add", hostAddr+"/24", "dev", "vc")
	run(t, "ip", "-n", h.client, "addr", "add", clientAddr+"/24", "dev", "eth0")
	run(t, "ip", "-n", h.host, "link", "set", "vc", "up")
	run(t, "ip", "-n", h.client, "link", "set", "eth0", "up")
	for _, script := range setup {
		run(t, "ip", "netns", "exec", h.host, "nft", script)
	}
	for _, port := range []int{openPort, closedPort} {
		h.listen(t, port)
	}
	// Both ports answer before rampart runs: a drop later is rampart's.
	deadline := time.Now().Add(5 * time.Second)
	for h.connect(openPort) != nil || h.connect(closedPort) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the client cannot reach %s:%d and :%d before rampart runs: %v, %v",
				hostAddr, openPort, closedPort, h.connect(openPort), h.connect(closedPort))
		}
		time.Sleep(50 * time.Millisecond)
	}

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: dialInNetns(filepath.Join("/run/netns", h.host)), DisableKeepAlives: true,
	}}
	srv, err := startServer(serverOptions{
		name: t.Name(), dir: t.TempDir(), enforcer: "nftables",
		prefix: []string{"ip", "netns", "exec", h.host}, client: client, extra: extra,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	h.srv = srv

	a := srv.newAccount(t, "lifecycle")
	tok := srv.newToken(t, a.Org)
	var created struct {
		Group apiGroup `json:"security_group"`
	}
	groups := "/instance/v1/zones/" + zone + "/security_groups"
	if code := srv.api(t, http.MethodPost, groups, tok.SecretKey, map[string]any{
		"name": "host", "project": tok.ProjectID, "stateful": true,
		"inbound_default_policy": "accept", "outbound_default_policy": "accept",
	}, &created); code != http.StatusCreated {
		t.Fatalf("POST %s = %d, want 201", groups, code)
	}
	g := created.Group
	h.tok, h.group, h.account = tok, g, a
	rule := map[string]any{"direction": "inbound", "action": "drop", "protocol": "TCP", "ip_range": "0.0.0.0/0", "dest_port_from": closedPort}
	if code := srv.api(t, http.MethodPost, groupPath(g.ID)+"/rules", tok.SecretKey, rule, nil); code != http.StatusCreated {
		t.Fatalf("POST %s/rules = %d, want 201", groupPath(g.ID), code)
	}
	servers := "/instance/v1/zones/" + zone + "/servers"
	if code := srv.api(t, http.MethodPost, servers, tok.SecretKey, map[string]any{
		"name": "this-host", "project": tok.ProjectID, "local": true, "security_group": g.ID,
	}, nil); code != http.StatusCreated {
		t.Fatalf("POST %s = %d, want 201", servers, code)
	}
	srv.waitState(t, tok, g.ID, "available")
	h.expectPorts(t, "while serve runs", true)
	return h
}

// stopServe sends serve SIGTERM and checks that it exits cleanly, saying
// that the ruleset stays.
func (h *enforcedHost) stopServe(t *testing.T) {
	t.Helper()
	h.srv.stop()
	if code := h.srv.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("serve exited with %d after SIGTERM:\n%s", code, h.srv.logTail())
	}
	if log := h.srv.logTail(); !strings.Contains(log, "the nftables ruleset stays in place") {
		t.Errorf("serve did not say the ruleset stays when it stopped:\n%s", log)
	}
	if err := runErr("ip", "netns", "exec", h.host, "nft", "list", "table", "inet", "rampart"); err != nil {
		t.Fatalf("table inet rampart is gone after serve stopped: %v", err)
	}
}

// expectPorts checks that openPort answers the client and that closedPort
// does (dropped false) or times out (dropped true).
func (h *enforcedHost) expectPorts(t *testing.T, when string, dropped bool) {
	t.Helper()
	if err := h.connect(openPort); err != nil {
		t.Errorf("%s: client -> %s:%d: %v, want an answer", when, hostAddr, openPort, err)
	}
	err := h.connect(closedPort)
	var ne net.Error
	switch {
	case !dropped && err != nil:
		t.Errorf("%s: client -> %s:%d: %v, want an answer (nothing drops it now)", when, hostAddr, closedPort, err)
	case dropped && err == nil:
		t.Errorf("%s: client -> %s:%d answered, want it dropped", when, hostAddr, closedPort)
	case dropped && !(errors.As(err, &ne) && ne.Timeout()):
		t.Errorf("%s: client -> %s:%d: %v, want a silent drop (timeout)", when, hostAddr, closedPort, err)
	}
}

// connect opens a TCP connection from the client to the host's port and
// reads the listener's greeting: nil means the packets went through both
// ways.
func (h *enforcedHost) connect(port int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	c, err := dialInNetns(filepath.Join("/run/netns", h.client))(ctx, "tcp", net.JoinHostPort(hostAddr, fmt.Sprint(port)))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	greeting, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if string(greeting) != "ok\n" {
		return fmt.Errorf("greeting %q", greeting)
	}
	return nil
}

// listen accepts connections on the host's port, greeting each with
// "ok\n", until t ends.
func (h *enforcedHost) listen(t *testing.T, port int) {
	t.Helper()
	addr := net.JoinHostPort(hostAddr, fmt.Sprint(port))
	ln, err := inNetns(filepath.Join("/run/netns", h.host), func() (net.Listener, error) { return net.Listen("tcp", addr) })
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, h.host, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("ok\n"))
			c.Close()
		}
	}()
}

// nft runs nft in the host namespace.
func (h *enforcedHost) nft(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", h.host, "nft"}, args...)...)
}

// runErr runs argv and returns its error (with its output), for commands
// whose failure is an answer.
func runErr(argv ...string) error {
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, out)
	}
	return nil
}
