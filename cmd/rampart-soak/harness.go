package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netns"

	"github.com/rampart-fw/rampart/internal/pgcluster"
)

// harness runs the consoles (and the agent) and talks to them.
type harness struct {
	cfg         config
	dir         string
	db          string // the database: a SQLite path or a postgres:// URL
	pg          *pgcluster.Cluster
	secret, org string
	consoles    []*console
	agent       *agentProc // with -consoles 2
	namespaces  []string   // made by the run, deleted at its end
}

// console is one `rampart serve`, in a namespace of its own or not.
type console struct {
	name      string // "A", "B"
	host      string // its host's name: the servers it enforces
	port      int
	agentAddr string // its agents' endpoint, "" without agents
	ns        *nsDialer
	bin, db   string
	logPath   string
	secret    string // the API token the clients use
	client    *http.Client
	alive     atomic.Bool // up, as a load balancer would see it
	requests  atomic.Int64

	mu  sync.Mutex
	cmd *exec.Cmd
}

// nsDialer is a network namespace made for the run, and the connections
// made into it: sockets keep the namespace they were made in, so one
// goroutine locked into the namespace makes every connection.
type nsDialer struct {
	name     string
	handle   netns.NsHandle
	requests chan dialRequest
}

type dialRequest struct {
	addr  string
	reply chan dialReply
}

type dialReply struct {
	conn net.Conn
	err  error
}

// newNamespace creates a network namespace with loopback up.
func (h *harness) newNamespace(suffix string) (*nsDialer, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("network namespaces need root")
	}
	name := fmt.Sprintf("rampart-soak-%d-%s", os.Getpid(), suffix)
	if err := cmdRun("ip", "netns", "add", name); err != nil {
		return nil, err
	}
	h.namespaces = append(h.namespaces, name)
	if err := cmdRun("ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	handle, err := netns.GetFromName(name)
	if err != nil {
		return nil, err
	}
	d := &nsDialer{name: name, handle: handle, requests: make(chan dialRequest)}
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(handle); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for req := range d.requests {
			conn, err := (&net.Dialer{Timeout: 5 * time.Second}).Dial("tcp", req.addr)
			req.reply <- dialReply{conn, err}
		}
	}()
	return d, <-ready
}

func (d *nsDialer) dial(_ context.Context, _, addr string) (net.Conn, error) {
	reply := make(chan dialReply, 1)
	d.requests <- dialRequest{addr, reply}
	r := <-reply
	return r.conn, r.err
}

// deleteNamespaces deletes every namespace of the run.
func (h *harness) deleteNamespaces() {
	for _, c := range h.consoles {
		if c.ns != nil {
			close(c.ns.requests)
			c.ns.handle.Close()
		}
	}
	for _, name := range h.namespaces {
		exec.Command("ip", "netns", "del", name).Run()
	}
}

func cmdRun(args ...string) error {
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// newConsole prepares console name; start runs it.
func (h *harness) newConsole(name string, ns *nsDialer, agentAddr string) (*console, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &console{name: name, port: port, agentAddr: agentAddr, ns: ns, bin: h.cfg.bin, db: h.db, secret: h.secret,
		logPath: fmt.Sprintf("%s/serve-%s.log", h.dir, strings.ToLower(name))}
	if agentAddr != "" {
		c.host = "soak-" + strings.ToLower(name)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512, IdleConnTimeout: 30 * time.Second}
	if ns != nil {
		tr.DialContext = ns.dial
	}
	c.client = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	h.consoles = append(h.consoles, c)
	return c, nil
}

// start runs the console and waits until it answers /healthz.
func (c *console) start() error {
	c.mu.Lock()
	args := []string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", c.port), "--db", c.db}
	if c.host != "" {
		args = append(args, "--host-name", c.host)
	}
	if c.agentAddr != "" {
		ip, _, _ := net.SplitHostPort(c.agentAddr)
		args = append(args, "--agent-listen", c.agentAddr, "--agent-names", ip)
	}
	var cmd *exec.Cmd
	if c.ns != nil {
		cmd = exec.Command("ip", append([]string{"netns", "exec", c.ns.name, c.bin}, append(args, "--enforcer", "nftables")...)...)
	} else {
		cmd = exec.Command(c.bin, append(args, "--enforcer", "preview")...)
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.mu.Unlock()
		return err
	}
	c.cmd = cmd
	c.mu.Unlock()
	if err := c.waitHealthy(20 * time.Second); err != nil {
		return err
	}
	c.alive.Store(true)
	return nil
}

func (c *console) waitHealthy(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := c.client.Get(c.url("/healthz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	log, _ := os.ReadFile(c.logPath)
	return fmt.Errorf("console %s not healthy within %s; log:\n%s", c.name, limit, tail(string(log), 2000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// kill ends the console with SIGKILL: nothing of it runs after, nothing it
// held in memory is written.
func (c *console) kill() {
	c.alive.Store(false)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	// ip netns exec runs the binary in place (exec), so its PID is the server's.
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	c.cmd = nil
	c.client.CloseIdleConnections()
}

func (c *console) stop() {
	c.alive.Store(false)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	c.cmd.Wait()
	c.cmd = nil
}

func (c *console) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", c.port, path) }

// do sends one API request; status 0 means the request did not complete.
func (c *console) do(method, path string, body any, out any) (int, error) {
	c.requests.Add(1)
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.url("/instance/v1/zones/fr-par-1"+path), rd)
	req.Header.Set("X-Auth-Token", c.secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
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

// via returns the console a client whose home is console home talks to:
// its home while it is up, else the first one up (as a load balancer in
// front of them would), else its home.
func (h *harness) via(home int) *console {
	if c := h.consoles[home]; c.alive.Load() {
		return c
	}
	for _, c := range h.consoles {
		if c.alive.Load() {
			return c
		}
	}
	return h.consoles[home]
}

// hostFor names the host of client i's server: with several consoles,
// the consoles' hosts and the agent's in turn; with one, none (the
// console's own host, the default).
func (h *harness) hostFor(i int) string {
	if h.agent == nil {
		return ""
	}
	hosts := []string{}
	for _, c := range h.consoles {
		hosts = append(hosts, c.host)
	}
	hosts = append(hosts, h.agent.host)
	return hosts[i%len(hosts)]
}
