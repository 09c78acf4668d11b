// Command rampart-soak drives a real rampart binary with many concurrent
// API clients, optionally kills it with SIGKILL mid-run and restarts it,
// and then checks that every acknowledged write is in the database, that
// positions have no gaps, and that the enforcer holds the compiled
// snapshot. It talks only to 127.0.0.1 (or to 127.0.0.1 inside a network
// namespace it creates itself with -netns).
//
//	make soak                      # 200 clients, 60 s, preview enforcer
//	rampart-soak -crash            # the same, killed and restarted mid-run
//	rampart-soak -netns            # serve enforces with nftables in a namespace (root)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netns"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type config struct {
	bin      string
	clients  int
	duration time.Duration
	crash    bool
	netns    bool
	maxRules int
}

func run() error {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "bin/rampart", "the rampart binary")
	flag.IntVar(&cfg.clients, "clients", 200, "concurrent API clients, each with its own group and server")
	flag.DurationVar(&cfg.duration, "duration", 60*time.Second, "how long the load runs")
	flag.BoolVar(&cfg.crash, "crash", false, "SIGKILL the server half-way and restart it")
	flag.BoolVar(&cfg.netns, "netns", false, "run serve with --enforcer nftables in a network namespace made for the run (root)")
	flag.IntVar(&cfg.maxRules, "max-rules", 40, "rules per group the clients keep at most")
	flag.Parse()

	dir, err := os.MkdirTemp("", "rampart-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	h := &harness{cfg: cfg, db: filepath.Join(dir, "soak.db"), logPath: filepath.Join(dir, "serve.log")}
	if cfg.netns {
		if err := h.makeNetns(); err != nil {
			return err
		}
		defer h.deleteNetns()
	}
	tok, err := exec.Command(cfg.bin, "token", "create", "--db", h.db, "--org", "soak").Output()
	if err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	var t struct {
		Secret string `json:"secret_key"`
		Org    string `json:"organization_id"`
	}
	if err := json.Unmarshal(tok, &t); err != nil {
		return err
	}
	h.secret, h.org = t.Secret, t.Org
	h.client = &http.Client{Timeout: 30 * time.Second, Transport: h.transport()}
	if err := h.start(); err != nil {
		return err
	}
	defer h.stop()

	clients, err := h.setUp()
	if err != nil {
		return err
	}
	fmt.Printf("soak: %d clients, %s, crash=%v, enforcer=%s\n", cfg.clients, cfg.duration, cfg.crash, h.mode())

	stats := &stats{}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()
	if cfg.crash {
		go func() {
			select {
			case <-time.After(cfg.duration / 2):
			case <-ctx.Done():
				return
			}
			h.kill()
			fmt.Println("soak: server killed with SIGKILL; restarting")
			if err := h.start(); err != nil {
				fmt.Fprintln(os.Stderr, "soak: restart:", err)
				cancel()
			}
		}()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); c.loop(ctx, h, stats) }()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stats.report(elapsed)

	// After a crash some requests were cut: their outcome is unknown until
	// the database is read back.
	if err := h.waitHealthy(30 * time.Second); err != nil {
		return err
	}
	var failures []string
	if n := stats.serverErrors.Load(); n > 0 {
		failures = append(failures, fmt.Sprintf("%d answers were 5xx", n))
	}
	for _, c := range clients {
		if err := c.verify(h); err != nil {
			failures = append(failures, err.Error())
		}
	}
	if err := h.verifyEnforcer(clients); err != nil {
		failures = append(failures, err.Error())
	}
	h.stop()
	if err := h.verifyIntegrity(); err != nil {
		failures = append(failures, err.Error())
	}
	if len(failures) > 0 {
		if len(failures) > 20 {
			failures = append(failures[:20], fmt.Sprintf("... and %d more", len(failures)-20))
		}
		return fmt.Errorf("%d checks failed:\n  %s", len(failures), strings.Join(failures, "\n  "))
	}
	fmt.Println("soak: every acknowledged write is in the database, positions are 1..N, the enforcer holds the snapshot")
	return nil
}

// harness runs the server and talks to it.
type harness struct {
	cfg          config
	db, logPath  string
	port         int
	ns           string
	nsHandle     netns.NsHandle
	secret, org  string
	client       *http.Client
	mu           sync.Mutex
	cmd          *exec.Cmd
	dialRequests chan dialRequest
}

func (h *harness) mode() string {
	if h.cfg.netns {
		return "nftables (namespace " + h.ns + ")"
	}
	return "preview"
}

func (h *harness) makeNetns() error {
	if os.Geteuid() != 0 {
		return errors.New("-netns needs root")
	}
	h.ns = fmt.Sprintf("rampart-soak-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", h.ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	if out, err := exec.Command("ip", "-n", h.ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("lo up: %v: %s", err, out)
	}
	handle, err := netns.GetFromName(h.ns)
	if err != nil {
		return err
	}
	h.nsHandle = handle
	h.dialRequests = make(chan dialRequest)
	// Sockets keep the namespace they were made in: one goroutine locked
	// into the namespace makes every connection of the run.
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(handle); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for req := range h.dialRequests {
			conn, err := (&net.Dialer{Timeout: 5 * time.Second}).Dial("tcp", req.addr)
			req.reply <- dialReply{conn, err}
		}
	}()
	return <-ready
}

func (h *harness) deleteNetns() {
	if h.dialRequests != nil {
		close(h.dialRequests)
	}
	h.nsHandle.Close()
	exec.Command("ip", "netns", "del", h.ns).Run()
}

type dialRequest struct {
	addr  string
	reply chan dialReply
}

type dialReply struct {
	conn net.Conn
	err  error
}

func (h *harness) transport() *http.Transport {
	tr := &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512, IdleConnTimeout: 30 * time.Second}
	if h.cfg.netns {
		tr.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
			reply := make(chan dialReply, 1)
			h.dialRequests <- dialRequest{addr, reply}
			r := <-reply
			return r.conn, r.err
		}
	}
	return tr
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (h *harness) start() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		h.port = p
	}
	args := []string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", h.port), "--db", h.db}
	var cmd *exec.Cmd
	if h.cfg.netns {
		cmd = exec.Command("ip", append([]string{"netns", "exec", h.ns, h.cfg.bin}, append(args, "--enforcer", "nftables")...)...)
	} else {
		cmd = exec.Command(h.cfg.bin, append(args, "--enforcer", "preview")...)
	}
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	h.cmd = cmd
	h.mu.Unlock()
	err = h.waitHealthy(20 * time.Second)
	h.mu.Lock()
	return err
}

func (h *harness) waitHealthy(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := h.client.Get(h.url("/healthz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	log, _ := os.ReadFile(h.logPath)
	return fmt.Errorf("server not healthy within %s; log:\n%s", limit, tail(string(log), 2000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (h *harness) kill() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		return
	}
	// ip netns exec runs the binary in place (exec), so its PID is the server's.
	h.cmd.Process.Signal(syscall.SIGKILL)
	h.cmd.Wait()
	h.cmd = nil
	h.client.CloseIdleConnections()
}

func (h *harness) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		return
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	h.cmd.Wait()
	h.cmd = nil
}

func (h *harness) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", h.port, path) }

// do sends one API request; status 0 means the request did not complete.
func (h *harness) do(method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.url("/instance/v1/zones/fr-par-1"+path), rd)
	req.Header.Set("X-Auth-Token", h.secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if out != nil && resp.StatusCode < 300 && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, nil
}

type groupAnswer struct {
	SecurityGroup struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"security_group"`
}

type rulesAnswer struct {
	Rules []struct {
		ID       string `json:"id"`
		Position int    `json:"position"`
		Editable bool   `json:"editable"`
	} `json:"rules"`
}

type serverAnswer struct {
	Server struct {
		ID            string `json:"id"`
		SecurityGroup struct {
			ID string `json:"id"`
		} `json:"security_group"`
	} `json:"server"`
}

// setUp gives each client a group, a server and a shared group to move
// its server to.
func (h *harness) setUp() ([]*client, error) {
	var shared groupAnswer
	if _, err := h.do("POST", "/security_groups", map[string]any{"name": "shared", "enable_default_security": false}, &shared); err != nil {
		return nil, err
	}
	clients := make([]*client, h.cfg.clients)
	errs := make(chan error, len(clients))
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{n: i, shared: shared.SecurityGroup.ID, maxRules: h.cfg.maxRules, rng: rand.New(rand.NewPCG(uint64(i), 42))}
			var g groupAnswer
			if _, err := h.do("POST", "/security_groups", map[string]any{"name": fmt.Sprintf("soak-%03d", i),
				"stateful": i%2 == 0, "inbound_default_policy": "drop", "enable_default_security": i%3 != 0}, &g); err != nil {
				errs <- err
				return
			}
			c.group = g.SecurityGroup.ID
			var s serverAnswer
			if _, err := h.do("POST", "/servers", map[string]any{"name": fmt.Sprintf("vm-%03d", i),
				"interface": fmt.Sprintf("sk%d", i), "security_group": c.group}, &s); err != nil {
				errs <- err
				return
			}
			c.server, c.serverGroup = s.Server.ID, c.group
			clients[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, fmt.Errorf("set up: %w", err)
	}
	return clients, nil
}

type stats struct {
	mu           sync.Mutex
	latencies    []time.Duration
	requests     atomic.Int64
	serverErrors atomic.Int64
	cut          atomic.Int64
	refused      atomic.Int64
}

func (s *stats) observe(d time.Duration, status int) {
	s.requests.Add(1)
	switch {
	case status == 0:
		s.cut.Add(1)
	case status >= 500:
		s.serverErrors.Add(1)
	case status >= 400:
		s.refused.Add(1)
	}
	s.mu.Lock()
	s.latencies = append(s.latencies, d)
	s.mu.Unlock()
}

func (s *stats) report(elapsed time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slices.Sort(s.latencies)
	q := func(p float64) time.Duration {
		if len(s.latencies) == 0 {
			return 0
		}
		return s.latencies[int(p*float64(len(s.latencies)-1))]
	}
	n := s.requests.Load()
	fmt.Printf("soak: %d requests in %s: %.0f requests/s, p50 %s, p99 %s; 5xx %d, refused (4xx) %d, cut by the crash %d\n",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), q(0.5).Round(time.Microsecond),
		q(0.99).Round(time.Microsecond), s.serverErrors.Load(), s.refused.Load(), s.cut.Load())
}

// client owns one group and one server, and keeps a model of what the
// database must hold: the rule IDs in order and the server's group. A
// request cut by the crash has an unknown outcome: the client reads the
// state back as soon as the server answers again and checks that it is
// one of the two the request allows.
type client struct {
	n                   int
	group, shared       string
	server, serverGroup string
	rules               []string
	maxRules            int
	rng                 *rand.Rand
	pending             func(rules []string, serverGroup string) bool
	failures            []string
}

func (c *client) loop(ctx context.Context, h *harness, st *stats) {
	for ctx.Err() == nil {
		if c.pending != nil {
			if !c.resolve(h) {
				time.Sleep(50 * time.Millisecond) // the server is restarting
				continue
			}
		}
		start := time.Now()
		status, _ := c.step(h)
		st.observe(time.Since(start), status)
	}
}

// readBack returns the group's editable rules in order, checking positions.
func (c *client) readBack(h *harness) ([]string, string, error) {
	var got rulesAnswer
	if _, err := h.do("GET", "/security_groups/"+c.group+"/rules", nil, &got); err != nil {
		return nil, "", err
	}
	var ids []string
	for _, r := range got.Rules {
		if !r.Editable {
			continue
		}
		ids = append(ids, r.ID)
		if r.Position != len(ids) {
			return nil, "", fmt.Errorf("client %d: rule %s at position %d, want %d (gap)", c.n, r.ID, r.Position, len(ids))
		}
	}
	var s serverAnswer
	if _, err := h.do("GET", "/servers/"+c.server, nil, &s); err != nil {
		return nil, "", err
	}
	return ids, s.Server.SecurityGroup.ID, nil
}

func (c *client) resolve(h *harness) bool {
	ids, sg, err := c.readBack(h)
	if err != nil {
		return false
	}
	if !c.pending(ids, sg) {
		c.failures = append(c.failures, fmt.Sprintf("client %d: after a cut request the database holds rules %v and group %s, "+
			"neither the state before (%v, %s) nor the one the request asked", c.n, ids, sg, c.rules, c.serverGroup))
	}
	c.rules, c.serverGroup, c.pending = ids, sg, nil
	return true
}

// cut records a request whose outcome is unknown: either nothing changed,
// or after(rules) holds.
func (c *client) cut(after func(rules []string, serverGroup string) bool) {
	before, beforeSG := slices.Clone(c.rules), c.serverGroup
	c.pending = func(rules []string, sg string) bool {
		return (slices.Equal(rules, before) && sg == beforeSG) || after(rules, sg)
	}
}

func (c *client) step(h *harness) (int, error) {
	op := c.rng.IntN(100)
	switch {
	case op < 30: // reads
		if op < 15 {
			return h.do("GET", "/security_groups/"+c.group+"/rules", nil, nil)
		}
		if op < 25 {
			return h.do("GET", "/security_groups/"+c.group, nil, nil)
		}
		return h.do("GET", "/security_groups?per_page=20", nil, nil)
	case op < 55 && len(c.rules) < c.maxRules: // insert at a random position
		pos := 1 + c.rng.IntN(len(c.rules)+1)
		var out struct {
			Rule struct {
				ID string `json:"id"`
			} `json:"rule"`
		}
		body := map[string]any{"protocol": "TCP", "direction": []string{"inbound", "outbound"}[c.rng.IntN(2)],
			"action": "accept", "ip_range": fmt.Sprintf("10.%d.%d.0/24", c.n%250, c.rng.IntN(250)),
			"dest_port_from": 1 + c.rng.IntN(60000), "position": pos}
		status, err := h.do("POST", "/security_groups/"+c.group+"/rules", body, &out)
		switch {
		case status == 0:
			before, sg := slices.Clone(c.rules), c.serverGroup
			c.cut(func(rules []string, g string) bool { // one new rule at pos
				return g == sg && len(rules) == len(before)+1 && slices.Equal(slices.Delete(slices.Clone(rules), pos-1, pos), before)
			})
		case err == nil:
			c.rules = slices.Insert(c.rules, pos-1, out.Rule.ID)
		}
		return status, err
	case op < 70 && len(c.rules) > 1: // move
		from := c.rng.IntN(len(c.rules))
		to := c.rng.IntN(len(c.rules))
		id := c.rules[from]
		next := slices.Delete(slices.Clone(c.rules), from, from+1)
		next = slices.Insert(next, to, id)
		status, err := h.do("PATCH", "/security_groups/"+c.group+"/rules/"+id, map[string]any{"position": to + 1}, nil)
		return c.settle(status, err, next)
	case op < 85 && len(c.rules) > 0: // delete
		i := c.rng.IntN(len(c.rules))
		next := slices.Delete(slices.Clone(c.rules), i, i+1)
		status, err := h.do("DELETE", "/security_groups/"+c.group+"/rules/"+c.rules[i], nil, nil)
		return c.settle(status, err, next)
	case op < 90: // set-all: keep a shuffled half, add one at the end
		keep := slices.Clone(c.rules)
		c.rng.Shuffle(len(keep), func(i, j int) { keep[i], keep[j] = keep[j], keep[i] })
		keep = keep[:len(keep)/2]
		var body []map[string]any
		for _, id := range keep {
			body = append(body, map[string]any{"id": id, "protocol": "UDP", "direction": "inbound", "action": "drop",
				"ip_range": "192.0.2.0/24", "dest_port_from": 53})
		}
		body = append(body, map[string]any{"id": nil, "protocol": "ICMP", "direction": "inbound", "action": "accept", "ip_range": "0.0.0.0/0"})
		var out rulesAnswer
		status, err := h.do("PUT", "/security_groups/"+c.group+"/rules", map[string]any{"rules": body}, &out)
		switch {
		case status == 0:
			sg := c.serverGroup
			c.cut(func(rules []string, g string) bool {
				return g == sg && len(rules) == len(keep)+1 && slices.Equal(rules[:len(keep)], keep)
			})
		case err == nil:
			c.rules = c.rules[:0]
			for _, r := range out.Rules {
				if r.Editable {
					c.rules = append(c.rules, r.ID)
				}
			}
		}
		return status, err
	default: // move the server between its group and the shared one
		target := c.shared
		if c.serverGroup == c.shared {
			target = c.group
		}
		status, err := h.do("PATCH", "/servers/"+c.server, map[string]any{"security_group": map[string]string{"id": target}}, nil)
		switch {
		case status == 0:
			rules := slices.Clone(c.rules)
			c.cut(func(r []string, g string) bool { return g == target && slices.Equal(r, rules) })
		case err == nil:
			c.serverGroup = target
		}
		return status, err
	}
}

// settle applies a write's outcome to the model.
func (c *client) settle(status int, err error, next []string) (int, error) {
	switch {
	case status == 0:
		sg := c.serverGroup
		c.cut(func(rules []string, g string) bool { return g == sg && slices.Equal(rules, next) })
	case err == nil:
		c.rules = next
	}
	return status, err
}

// verify checks the database against the model at the end of the run.
func (c *client) verify(h *harness) error {
	if c.pending != nil && !c.resolve(h) {
		return fmt.Errorf("client %d: cannot read back", c.n)
	}
	if len(c.failures) > 0 {
		return errors.New(strings.Join(c.failures, "; "))
	}
	ids, sg, err := c.readBack(h)
	if err != nil {
		return err
	}
	if !slices.Equal(ids, c.rules) {
		return fmt.Errorf("client %d: rules %v, want %v", c.n, ids, c.rules)
	}
	if sg != c.serverGroup {
		return fmt.Errorf("client %d: server in %s, want %s", c.n, sg, c.serverGroup)
	}
	return nil
}

// verifyEnforcer waits for every group to be available, then compares the
// enforcer's text of each group with a compile of the database's snapshot.
func (h *harness) verifyEnforcer(clients []*client) error {
	db, err := store.Open(context.Background(), h.db, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range clients {
		for {
			var g groupAnswer
			if _, err := h.do("GET", "/security_groups/"+c.group, nil, &g); err != nil {
				return err
			}
			if g.SecurityGroup.State == "available" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("group of client %d still %s", c.n, g.SecurityGroup.State)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	snap, err := db.Snapshot(context.Background())
	if err != nil {
		return err
	}
	want := enforcer.Compile(snap)
	var bad []string
	ids := []string{clients[0].shared}
	for _, c := range clients {
		ids = append(ids, c.group)
	}
	sort.Strings(ids)
	for _, id := range ids {
		var got struct {
			Ruleset string `json:"ruleset"`
		}
		if _, err := h.do("GET", "/security_groups/"+id+"/ruleset", nil, &got); err != nil {
			return err
		}
		if got.Ruleset != want.GroupText(id) {
			bad = append(bad, id)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the enforcer's ruleset differs from the compiled snapshot for %d groups (first %s)", len(bad), bad[0])
	}
	if h.cfg.netns {
		out, err := exec.Command("ip", "netns", "exec", h.ns, "nft", "list", "table", "inet", "rampart").CombinedOutput()
		if err != nil {
			return fmt.Errorf("nft list in %s: %v: %s", h.ns, err, out)
		}
		for _, c := range clients {
			in, _ := enforcer.ChainNames(c.group)
			if !bytes.Contains(out, []byte("chain "+in)) {
				return fmt.Errorf("the kernel lacks chain %s", in)
			}
		}
	}
	fmt.Printf("soak: %d groups available; the enforcer's text equals a compile of generation %d\n", len(ids), snap.Generation)
	return nil
}

func (h *harness) verifyIntegrity() error {
	db, err := store.Open(context.Background(), h.db, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.IntegrityCheck(context.Background())
	if err != nil {
		return err
	}
	if res != "ok" {
		return fmt.Errorf("integrity_check: %s", res)
	}
	fmt.Println("soak: PRAGMA integrity_check: ok")
	return nil
}
