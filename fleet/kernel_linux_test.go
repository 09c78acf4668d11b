//go:build linux

package fleet_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/rampart-fw/rampart/agent"
	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/fleet"
	"github.com/rampart-fw/rampart/internal/netnstest"
	"github.com/rampart-fw/rampart/store"
)

// The kernel tests' network, every part of it a namespace made for the
// test:
//
//	                          core (the console, 10.98.N.1)
//	              h1 ──────────────┼────────────── h3
//	             (10.98.1.2)       h2 (10.98.2.2)  (10.98.3.2)
//	            vm-a    vm-b     vm-a   vm-b      vm-a   vm-b
//	            h1a     h1b      h2a    h2b       h3a    h3b
//
// Each host hN runs an agent; its servers hNa (10.1N.1.2) and hNb
// (10.1N.2.2) are namespaces behind veth pairs whose host side (vm-a,
// vm-b) is the server's interface. Traffic from a server on one host to a
// server on another crosses the sender's host (its outbound group), core,
// and the receiver's host (its inbound group).

const probeTimeout = 300 * time.Millisecond

type labServer struct {
	name string // h1a
	h    netns.NsHandle
	addr string
}

type labHost struct {
	name  string // h1
	ns    string
	h     netns.NsHandle
	url   string // the console, as this host reaches it
	token string
	state string // the agent's state directory
	a, b  *labServer

	// The agent: in this process, or the binary in the namespace.
	inProc *runningAgent
	cmd    *exec.Cmd
	log    *bytes.Buffer
}

type lab struct {
	t      *testing.T
	coreNS string
	db     *store.DB
	con    *console
	bin    string // the rampart binary, for h3's agent
	hosts  []*labHost
	org    string
	groups map[string]store.Group // client, web, db
}

func newLab(t *testing.T) *lab {
	t.Helper()
	netnstest.RequireRoot(t)
	l := &lab{t: t, groups: map[string]store.Group{}}
	l.bin = rampartBinary(t)
	coreNS, coreH := netnstest.NewNS(t, "core")
	l.coreNS = coreNS
	run := netnstest.Run
	run(t, "ip", "netns", "exec", coreNS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	var names []string
	for i := 1; i <= 3; i++ {
		h := &labHost{name: fmt.Sprintf("h%d", i)}
		h.ns, h.h = netnstest.NewNS(t, h.name)
		run(t, "ip", "netns", "exec", h.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		run(t, "ip", "-n", coreNS, "link", "add", h.name, "type", "veth", "peer", "name", "uplink", "netns", h.ns)
		run(t, "ip", "-n", coreNS, "addr", "add", fmt.Sprintf("10.98.%d.1/24", i), "dev", h.name)
		run(t, "ip", "-n", coreNS, "link", "set", h.name, "up")
		run(t, "ip", "-n", h.ns, "addr", "add", fmt.Sprintf("10.98.%d.2/24", i), "dev", "uplink")
		run(t, "ip", "-n", h.ns, "link", "set", "uplink", "up")
		run(t, "ip", "-n", h.ns, "route", "add", "default", "via", fmt.Sprintf("10.98.%d.1", i))
		run(t, "ip", "-n", coreNS, "route", "add", fmt.Sprintf("10.%d.0.0/16", 10+i), "via", fmt.Sprintf("10.98.%d.2", i))
		for k, side := range []string{"a", "b"} {
			s := &labServer{name: h.name + side, addr: fmt.Sprintf("10.%d.%d.2", 10+i, k+1)}
			var sns string
			sns, s.h = netnstest.NewNS(t, s.name)
			iface := "vm-" + side
			run(t, "ip", "-n", h.ns, "link", "add", iface, "type", "veth", "peer", "name", "eth0", "netns", sns)
			run(t, "ip", "-n", h.ns, "addr", "add", fmt.Sprintf("10.%d.%d.1/24", 10+i, k+1), "dev", iface)
			run(t, "ip", "-n", h.ns, "link", "set", iface, "up")
			run(t, "ip", "-n", sns, "addr", "add", s.addr+"/24", "dev", "eth0")
			run(t, "ip", "-n", sns, "link", "set", "eth0", "up")
			run(t, "ip", "-n", sns, "route", "add", "default", "via", fmt.Sprintf("10.%d.%d.1", 10+i, k+1))
			for port := 8080; port <= 8083; port++ {
				serveTCP(t, s, port)
			}
			if side == "a" {
				h.a = s
			} else {
				h.b = s
			}
		}
		names = append(names, fmt.Sprintf("10.98.%d.1", i))
		l.hosts = append(l.hosts, h)
	}
	// Every server reaches every other before any ruleset exists.
	for _, from := range l.servers() {
		for _, to := range l.servers() {
			if from != to {
				if err := probe(from, to, 8080); err != nil {
					t.Fatalf("%s cannot reach %s without a ruleset: %v", from.name, to.name, err)
				}
			}
		}
	}

	// The console, listening in core; its own host has no servers.
	l.db = openDB(t)
	l.con = startConsole(t, l.db, consoleOpts{names: names, listen: func() (net.Listener, error) {
		return netnstest.InNS(coreH, func() (net.Listener, error) { return net.Listen("tcp", "0.0.0.0:0") })
	}})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(l.con.url, "https://"))
	ctx := context.Background()
	l.org = must[store.Organization](t)(l.db.EnsureOrganization(ctx, "acme")).ID
	for i, h := range l.hosts {
		h.url = fmt.Sprintf("https://10.98.%d.1:%s", i+1, port)
		_, h.token = must2(t)(fleet.CreateHost(ctx, l.db, h.name, 0))
		h.state = filepath.Join(t.TempDir(), h.name)
	}
	return l
}

func (l *lab) servers() []*labServer {
	var out []*labServer
	for _, h := range l.hosts {
		out = append(out, h.a, h.b)
	}
	return out
}

// rampartBinary returns RAMPART_BIN (make test builds it) or builds it.
func rampartBinary(t *testing.T) string {
	if bin := os.Getenv("RAMPART_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(t.TempDir(), "rampart")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/rampart")
	cmd.Dir = filepath.Dir(filepath.Dir(file))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/rampart: %v\n%s", err, out)
	}
	return bin
}

// startAgent starts host h's agent: h1 and h2 in this process (dialing
// from their namespace, applying there), h3 the rampart binary run in its
// namespace, as a host runs it.
func (l *lab) startAgent(h *labHost) {
	t := l.t
	t.Helper()
	token := ""
	if _, err := os.Stat(filepath.Join(h.state, "credential.json")); err != nil {
		token = h.token
	}
	if h.name == "h3" {
		h.log = &bytes.Buffer{}
		args := []string{"netns", "exec", h.ns, l.bin, "agent", "--state-dir", h.state, "--enforcer", "nftables"}
		if token != "" {
			args = append(args, "--console", h.url, "--join-token", token)
		}
		h.cmd = exec.Command("ip", args...)
		h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
		if err := h.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmd := h.cmd
		t.Cleanup(func() { stopCmd(cmd) })
		return
	}
	be, err := enforcer.NewNFTables(enforcer.WithNetNS(int(h.h)))
	if err != nil {
		t.Fatal(err)
	}
	hh := h.h
	h.inProc = startAgent(t, agent.Config{Consoles: []string{h.url}, JoinToken: token, StateDir: h.state, Backend: be,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return netnstest.InNS(hh, func() (net.Conn, error) {
				d := net.Dialer{Timeout: time.Second}
				return d.DialContext(ctx, network, addr)
			})
		}})
}

func stopCmd(cmd *exec.Cmd) {
	if cmd.ProcessState == nil {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

func (l *lab) stopAgent(h *labHost) {
	if h.inProc != nil {
		h.inProc.stop()
		h.inProc = nil
	}
	if h.cmd != nil {
		stopCmd(h.cmd)
		h.cmd = nil
	}
}

// dump logs the binary agent's output when the test failed.
func (l *lab) dump() {
	for _, h := range l.hosts {
		if h.log != nil && l.t.Failed() {
			l.t.Logf("%s's agent:\n%s", h.name, h.log.String())
		}
	}
}

// link takes a host's link to core (and so to the console) down or up.
// Down, its routes go: connections fail at once rather than wait on a dead
// wire, as on a host whose uplink is unplugged.
func (l *lab) link(h *labHost, up bool) {
	if !up {
		netnstest.Run(l.t, "ip", "-n", h.ns, "link", "set", "uplink", "down")
		return
	}
	netnstest.Run(l.t, "ip", "-n", h.ns, "link", "set", "uplink", "up")
	netnstest.Run(l.t, "ip", "-n", h.ns, "route", "replace", "default", "via", "10.98."+h.name[1:]+".1")
}

// table returns `nft -s list table inet rampart` in host h ("" without
// one): what the kernel enforces, without counters.
func table(h *labHost) string {
	out, err := exec.Command("ip", "netns", "exec", h.ns, "nft", "-s", "list", "table", "inet", enforcer.TableName).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// serveTCP answers "ok\n" on port in s.
func serveTCP(t *testing.T, s *labServer, port int) {
	ln, err := netnstest.InNS(s.h, func() (net.Listener, error) { return net.Listen("tcp", fmt.Sprintf(":%d", port)) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ok\n"))
			c.Close()
		}
	}()
}

// probe connects from one server to another and reads the greeting.
func probe(from, to *labServer, port int) error {
	c, err := netnstest.InNS(from.h, func() (net.Conn, error) {
		return net.DialTimeout("tcp", net.JoinHostPort(to.addr, fmt.Sprint(port)), probeTimeout)
	})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(probeTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && line != "ok\n" {
		err = fmt.Errorf("greeting %q", line)
	}
	return err
}

// flow is a connection that the groups let through or drop.
type flow struct {
	from, to *labServer
	port     int
	pass     bool
}

func (f flow) String() string {
	verb := "drops"
	if f.pass {
		verb = "passes"
	}
	return fmt.Sprintf("%s -> %s:%d %s", f.from.name, f.to.name, f.port, verb)
}

// holds reports whether the flow goes as expected; a drop must be
// silent (a timeout).
func (f flow) holds() bool {
	err := probe(f.from, f.to, f.port)
	if f.pass {
		return err == nil
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// expect checks flows in parallel (drops cost a timeout each).
func (l *lab) expect(flows ...flow) {
	l.t.Helper()
	var wg sync.WaitGroup
	bad := make([]bool, len(flows))
	for i, f := range flows {
		wg.Go(func() { bad[i] = !f.holds() })
	}
	wg.Wait()
	for i, f := range flows {
		if bad[i] {
			l.t.Errorf("want %s", f)
		}
	}
}

// eventually polls until every flow holds.
func (l *lab) eventually(what string, flows ...flow) time.Duration {
	l.t.Helper()
	return waitFor(l.t, what, func() bool {
		for _, f := range flows {
			if !f.holds() {
				return false
			}
		}
		return true
	})
}

// available waits until every group is available on every host holding it.
func (l *lab) available(what string) time.Duration {
	l.t.Helper()
	return waitFor(l.t, what, func() bool {
		for _, g := range l.groups {
			g = must[store.Group](l.t)(l.db.Group(context.Background(), l.org, zone, g.ID))
			if st, _ := l.con.c.GroupState(g.ID, g.Generation); st != store.Available {
				return false
			}
		}
		return true
	})
}

func (l *lab) rule(group string, in store.RuleInput) store.Rule {
	l.t.Helper()
	return must[store.Rule](l.t)(l.db.CreateRule(context.Background(), l.org, zone, l.groups[group].ID, in))
}

// TestFleetKernel: a console and three hosts, each with its agent (h3's
// the rampart binary) and two servers. Real packets show that each host
// enforces its own servers' groups, and that traffic between servers on
// two hosts passes the sender's outbound group on one and the receiver's
// inbound group on the other. Then: a change reaches every kernel; an agent
// restarted converges; an agent cut from the console keeps its ruleset,
// heals drift itself and converges when the link returns; an agent started
// while the console cannot be reached applies the view it kept.
func TestFleetKernel(t *testing.T) {
	l := newLab(t)
	defer l.dump()
	ctx := context.Background()
	h1, h2, h3 := l.hosts[0], l.hosts[1], l.hosts[2]
	port := func(p int) *int { return &p }
	group := func(name string) {
		l.groups[name] = must[store.Group](t)(l.db.CreateGroup(ctx, l.org, zone, store.GroupInput{Name: name, Stateful: true,
			InboundDefaultPolicy: store.Drop, OutboundDefaultPolicy: store.Accept, SMTPEnabled: true}))
	}
	group("client")
	group("web")
	group("db")
	// client: drops outbound 8082. web: accepts 8080-8082 from 10/8.
	// db: accepts 8081 from h1's side a only.
	l.rule("client", store.RuleInput{Direction: store.Outbound, Protocol: store.TCP, Action: store.Drop,
		IPRange: "10.0.0.0/8", DestPortFrom: port(8082)})
	l.rule("web", store.RuleInput{Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept,
		IPRange: "10.0.0.0/8", DestPortFrom: port(8080), DestPortTo: port(8082)})
	l.rule("db", store.RuleInput{Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept,
		IPRange: "10.11.1.0/24", DestPortFrom: port(8081)})
	place := map[*labServer]string{h1.a: "client", h1.b: "web", h2.a: "db", h2.b: "web", h3.a: "client", h3.b: "db"}
	for _, h := range l.hosts {
		for _, s := range []*labServer{h.a, h.b} {
			must[store.Server](t)(l.db.CreateServer(ctx, l.org, zone, store.ServerInput{Name: s.name,
				Interface: "vm-" + s.name[2:], Addresses: []string{s.addr}, SecurityGroupID: l.groups[place[s]].ID, Host: h.name}))
		}
	}

	start := time.Now()
	for _, h := range l.hosts {
		l.startAgent(h)
	}
	took := l.available("every group available on every host")
	t.Logf("three agents enrolled, applied and reported: %s", took)
	for _, h := range l.hosts {
		if st := l.con.hostStatus(t, h.name); st.State != fleet.HostReady {
			t.Fatalf("%s is %s %q", h.name, st.State, st.Detail)
		}
	}
	_ = start

	t.Run("each host enforces its own servers' groups", func(t *testing.T) {
		holds := map[*labHost][]string{h1: {"client", "web"}, h2: {"db", "web"}, h3: {"client", "db"}}
		for h, want := range holds {
			text := table(h)
			for name, g := range l.groups {
				in, _ := enforcer.ChainNames(g.ID)
				if got := strings.Contains(text, "chain "+in+" "); got != (name == want[0] || name == want[1]) {
					t.Errorf("%s holds %s's chains: %v, want %v", h.name, name, got, !got)
				}
			}
		}
		l.expect(
			flow{h1.a, h2.b, 8080, true},  // client out, web in on h2
			flow{h1.a, h2.b, 8082, false}, // dropped by h1: the sender's outbound group
			flow{h1.b, h2.b, 8082, true},  // web out accepts it, h2's web in too
			flow{h1.a, h2.a, 8081, true},  // db on h2 accepts h1a
			flow{h3.a, h2.a, 8081, false}, // dropped by h2: the receiver's inbound group
			flow{h1.a, h3.b, 8081, true},  // db on h3 accepts h1a
			flow{h2.b, h3.b, 8081, false}, // but not h2b
			flow{h3.a, h1.b, 8080, true},
			flow{h2.a, h1.b, 8083, false}, // web accepts 8080-8082 only
		)
	})

	// A change to the db group reaches h2 and h3, the hosts holding it.
	sent := l.con.c.Traffic()
	wide := l.rule("db", store.RuleInput{Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept,
		IPRange: "10.13.0.0/16", DestPortFrom: port(8081)})
	took = waitFor(t, "the rule in h2's and h3's kernels", func() bool {
		return strings.Contains(table(h2), wide.ID) && strings.Contains(table(h3), wide.ID)
	})
	t.Logf("commit to both kernels holding the rule: %s", took)
	after := l.con.c.Traffic()
	t.Logf("the one-rule change: %d frames, %d bytes to 3 agents (heartbeats every %s included)",
		after.Frames-sent.Frames, after.FrameBytes-sent.FrameBytes, testHeartbeat)
	if strings.Contains(table(h1), wide.ID) {
		t.Error("h1, which holds no db server, holds the db rule")
	}
	l.expect(flow{h3.a, h2.a, 8081, true})

	t.Run("an agent restarted converges", func(t *testing.T) {
		l.stopAgent(h2)
		if err := l.db.DeleteRule(ctx, l.org, zone, l.groups["db"].ID, wide.ID); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "h3 drops the rule", func() bool { return !strings.Contains(table(h3), wide.ID) })
		if !strings.Contains(table(h2), wide.ID) {
			t.Fatal("h2's kernel changed while its agent was stopped")
		}
		l.startAgent(h2)
		took := l.eventually("h2 converged", flow{h3.a, h2.a, 8081, false})
		t.Logf("restart to converged: %s", took)
		l.available("every group available after the restart")
	})

	t.Run("an agent cut from the console keeps its ruleset and heals drift", func(t *testing.T) {
		before := table(h1)
		l.link(h1, false)
		took := waitFor(t, "h1 lost", func() bool { return l.con.hostStatus(t, "h1").State == fleet.HostLost })
		t.Logf("link down to lost: %s", took)
		if table(h1) != before {
			t.Fatal("h1's ruleset changed when it lost the console")
		}
		local := []flow{{h1.a, h1.b, 8080, true}, {h1.a, h1.b, 8083, false}}
		l.expect(local...)
		netnstest.Run(t, "ip", "netns", "exec", h1.ns, "nft", "delete", "table", "inet", enforcer.TableName)
		l.expect(flow{h1.a, h1.b, 8083, true}) // open while the table is gone
		took = waitFor(t, "h1 healed", func() bool { return table(h1) == before })
		t.Logf("drift (table deleted) to healed, without the console: %s", took)
		l.expect(local...)

		// A change while h1 is cut: web accepts 8083.
		r := l.rule("web", store.RuleInput{Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept,
			IPRange: "10.0.0.0/8", DestPortFrom: port(8083)})
		waitFor(t, "h2 holds the change", func() bool { return strings.Contains(table(h2), r.ID) })
		if strings.Contains(table(h1), r.ID) {
			t.Fatal("h1 got a change while cut")
		}
		l.link(h1, true)
		took = l.eventually("h1 converged", flow{h1.a, h1.b, 8083, true})
		t.Logf("link up to converged: %s", took)
		waitFor(t, "h1 ready", func() bool { return l.con.hostStatus(t, "h1").State == fleet.HostReady })
	})

	t.Run("an agent started without its console applies the view it kept", func(t *testing.T) {
		l.stopAgent(h3)
		before := table(h3)
		// As after a reboot: the kernel holds nothing, the console is out
		// of reach.
		netnstest.Run(t, "ip", "netns", "exec", h3.ns, "nft", "delete", "table", "inet", enforcer.TableName)
		l.link(h3, false)
		l.expect(flow{h3.a, h3.b, 8081, true}) // nothing enforced
		l.startAgent(h3)
		took := waitFor(t, "h3's kept view in its kernel", func() bool { return table(h3) == before })
		t.Logf("start to protected, console unreachable: %s", took)
		l.expect(flow{h3.a, h3.b, 8081, false})
		if st := l.con.hostStatus(t, "h3"); st.State == fleet.HostReady {
			t.Logf("h3 still ready (lost after %s)", testLostAfter)
		}
		// A change meanwhile, then the link back.
		r := l.rule("db", store.RuleInput{Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept,
			IPRange: "10.13.1.0/24", DestPortFrom: port(8081)})
		l.link(h3, true)
		took = waitFor(t, "h3 converged", func() bool { return strings.Contains(table(h3), r.ID) })
		t.Logf("link up to converged: %s", took)
		l.expect(flow{h3.a, h3.b, 8081, true})
		l.available("every group available at the end")
	})

	// Port 8083 of the db servers is closed to all so far. h3's agent is
	// the rampart binary: the sets and members of its view reach its
	// kernel, and so do their changes, as set elements.
	t.Run("IP sets and group references reach the agents' kernels", func(t *testing.T) {
		l.expect(flow{h2.b, h3.b, 8083, false}, flow{h1.a, h3.b, 8083, false})
		set := must[store.IPSet](t)(l.db.CreateIPSet(ctx, l.org, zone, store.IPSetInput{Name: "partners",
			Entries: []string{h2.b.addr}}))
		ref := func(s string) *string { return &s }
		l.rule("db", store.RuleInput{Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept,
			IPSetID: ref(set.ID), DestPortFrom: port(8083)})
		took := l.eventually("a rule on an IP set through h3's agent", flow{h2.b, h3.b, 8083, true})
		t.Logf("rule on a set, commit to packets through: %s", took)
		l.expect(flow{h1.b, h3.b, 8083, false}, flow{h2.b, h2.a, 8083, true})

		must[store.IPSet](t)(l.db.UpdateIPSet(ctx, l.org, zone, set.ID, store.IPSetPatch{Entries: &[]string{h1.b.addr}}))
		took = l.eventually("the set's new entry through h3's agent", flow{h1.b, h3.b, 8083, true}, flow{h2.b, h3.b, 8083, false})
		t.Logf("set entries replaced, commit to packets: %s", took)

		// Servers of the client group (h1a, h3a) may reach 8083; h2b, of
		// web, may once it joins client.
		l.rule("db", store.RuleInput{Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept,
			RemoteGroupID: ref(l.groups["client"].ID), DestPortFrom: port(8083)})
		l.eventually("a rule on a group through h3's agent", flow{h1.a, h3.b, 8083, true})
		l.expect(flow{h2.b, h3.b, 8083, false})
		servers, _, err := l.db.Servers(ctx, l.org, zone, store.ServerFilter{Name: h2.b.name, All: true})
		if err != nil || len(servers) != 1 {
			t.Fatalf("server %s: %v %v", h2.b.name, servers, err)
		}
		must[store.Server](t)(l.db.UpdateServer(ctx, l.org, zone, servers[0].ID, store.ServerPatch{SecurityGroupID: ref(l.groups["client"].ID)}))
		took = l.eventually("a new member of the group through h3's agent", flow{h2.b, h3.b, 8083, true})
		t.Logf("server joined the referenced group, commit to packets: %s", took)
		l.available("every group available after the sets")
	})
}
