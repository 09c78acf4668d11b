package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// agentProc is `rampart agent` in a namespace of its own, given every
// console.
type agentProc struct {
	host, hostID string
	token        string
	ns           *nsDialer
	stateDir     string
	logPath      string
	consoles     []string // the consoles' agents' endpoints, in the order given
	be           *enforcer.NFTables
	cmd          *exec.Cmd
}

// setUpConsoles starts two consoles on the PostgreSQL database, each in a
// namespace of its own enforcing its own host, and prepares an agent in a
// third namespace with a link to each console's.
func (h *harness) setUpConsoles() error {
	ag, err := h.newNamespace("agent")
	if err != nil {
		return err
	}
	out, err := exec.Command(h.cfg.bin, "host", "add", "--db", h.db, "--name", "soak-agent").Output()
	if err != nil {
		return fmt.Errorf("host add: %w", err)
	}
	var added struct {
		ID    string `json:"host_id"`
		Token string `json:"join_token"`
	}
	if err := json.Unmarshal(out, &added); err != nil {
		return fmt.Errorf("host add: %w", err)
	}
	h.agent = &agentProc{host: "soak-agent", hostID: added.ID, token: added.Token, ns: ag,
		stateDir: h.dir + "/agent", logPath: h.dir + "/agent.log"}
	for i, name := range []string{"A", "B"} {
		ns, err := h.newNamespace(strings.ToLower(name))
		if err != nil {
			return err
		}
		// A link between the agent's namespace and the console's: the
		// agent reaches console i at 10.77.i.1.
		up := "up-" + strings.ToLower(name)
		for _, args := range [][]string{
			{"ip", "-n", ag.name, "link", "add", up, "type", "veth", "peer", "name", "agent", "netns", ns.name},
			{"ip", "-n", ns.name, "addr", "add", fmt.Sprintf("10.77.%d.1/24", i+1), "dev", "agent"},
			{"ip", "-n", ns.name, "link", "set", "agent", "up"},
			{"ip", "-n", ag.name, "addr", "add", fmt.Sprintf("10.77.%d.2/24", i+1), "dev", up},
			{"ip", "-n", ag.name, "link", "set", up, "up"},
		} {
			if err := cmdRun(args...); err != nil {
				return err
			}
		}
		c, err := h.newConsole(name, ns, fmt.Sprintf("10.77.%d.1:7443", i+1))
		if err != nil {
			return err
		}
		if err := c.start(); err != nil {
			return err
		}
		h.agent.consoles = append(h.agent.consoles, "https://"+c.agentAddr)
	}
	if h.agent.be, err = enforcer.NewNFTables(enforcer.WithNetNS(int(ag.handle))); err != nil {
		return err
	}
	return h.agent.start(h.cfg.bin)
}

func (a *agentProc) start(bin string) error {
	log, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	a.cmd = exec.Command("ip", "netns", "exec", a.ns.name, bin, "agent", "--console", strings.Join(a.consoles, ","),
		"--join-token", a.token, "--state-dir", a.stateDir, "--enforcer", "nftables")
	a.cmd.Stdout, a.cmd.Stderr = log, log
	return a.cmd.Start()
}

func (a *agentProc) stop() {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		a.cmd.Process.Kill()
		<-done
	}
	a.cmd = nil
	if a.be != nil {
		a.be.Close()
	}
}

// following returns the index of the console the agent holds a
// connection to (its view stream), -1 for none: read from the kernel's
// sockets in its namespace.
func (h *harness) following() (int, error) {
	out, err := exec.Command("ip", "netns", "exec", h.agent.ns.name, "ss", "-Htn", "state", "established").Output()
	if err != nil {
		return -1, fmt.Errorf("ss in the agent's namespace: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		for i, c := range h.consoles {
			if f[len(f)-1] == c.agentAddr {
				return i, nil
			}
		}
	}
	return -1, nil
}

// waitUp waits until the agent follows a console and holds its view, and
// makes the group the failover's change goes to: one server on the
// agent's host, which no client touches.
func (a *agentProc) waitUp(h *harness) (string, error) {
	c := h.consoles[0]
	var g groupAnswer
	if _, err := c.do("POST", "/security_groups", map[string]any{"name": "failover-probe", "inbound_default_policy": "drop"}, &g); err != nil {
		return "", err
	}
	if _, err := c.do("POST", "/servers", map[string]any{"name": "probe", "interface": "skprobe", "security_group": g.SecurityGroup.ID,
		"host": a.host}, nil); err != nil {
		return "", err
	}
	if err := waitAvailable(c, g.SecurityGroup.ID, 30*time.Second); err != nil {
		log, _ := os.ReadFile(a.logPath)
		return "", fmt.Errorf("the agent: %w; its log:\n%s", err, tail(string(log), 2000))
	}
	return g.SecurityGroup.ID, nil
}

// waitAvailable waits until console c reads group id available: every
// host holding its servers reported its generation applied.
func waitAvailable(c *console, id string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		var g groupAnswer
		_, err := c.do("GET", "/security_groups/"+id, nil, &g)
		switch {
		case err == nil && g.SecurityGroup.State == "available":
			return nil
		case time.Now().Before(deadline):
		case err != nil:
			return fmt.Errorf("group %s at console %s: %w", id, c.name, err)
		default:
			return fmt.Errorf("group %s not available at console %s within %s: %s", id, c.name, limit, g.SecurityGroup.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failover is what the kill of the console the agent follows showed.
type failover struct {
	Killed, Other string        // the consoles' names
	At            time.Duration // from the start of the load
	Moved         time.Duration // from the kill until the agent's connection to the other
	Change        time.Duration // from the change's POST (to the other) until the agent's kernel held it
	ChangeGen     int64         // the change's generation
	Available     time.Duration // from that POST until the other read the probe group available: the agent's report came to it
	Stored        time.Duration // from the kill until the database held the agent's report of the change
	StoredSeen    time.Time     // that report's time
	Restarted     time.Duration // from the kill until the killed console answered again
}

// failover waits half the load, kills the console the agent follows with
// SIGKILL and shows the agent moving to the other: its connection (read
// from the kernel's sockets), a change made through the other reaching
// its kernel, and its report of that change arriving through the other
// (the only console up), in the other's state of the group and in the
// database. The killed console is then started again.
func (h *harness) failover(ctx context.Context, db *store.DB, probe string) (*failover, error) {
	select {
	case <-time.After(h.cfg.duration / 2):
	case <-ctx.Done():
		return nil, fmt.Errorf("the load ended before the kill")
	}
	start := time.Now().Add(-h.cfg.duration / 2)
	k, err := h.following()
	if err != nil {
		return nil, err
	}
	if k < 0 {
		return nil, fmt.Errorf("the agent follows no console before the kill")
	}
	killed, other := h.consoles[k], h.consoles[1-k]
	f := &failover{Killed: killed.name, Other: other.name}
	t0 := time.Now()
	f.At = t0.Sub(start)
	killed.kill()
	fmt.Printf("soak: console %s, which the agent follows, killed with SIGKILL\n", killed.name)
	for {
		i, err := h.following()
		if err != nil {
			return nil, err
		}
		if i == 1-k {
			f.Moved = time.Since(t0)
			break
		}
		if time.Since(t0) > 30*time.Second {
			return nil, fmt.Errorf("the agent did not connect to console %s within 30 s of the kill", other.name)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A change after the kill, through the other console.
	t1 := time.Now()
	var r struct {
		Rule struct {
			ID string `json:"id"`
		} `json:"rule"`
	}
	if _, err := other.do("POST", "/security_groups/"+probe+"/rules", map[string]any{"protocol": "TCP", "direction": "inbound",
		"action": "accept", "ip_range": "198.51.100.0/24", "dest_port_from": 7777}, &r); err != nil {
		return nil, fmt.Errorf("the change after the kill: %w", err)
	}
	if f.ChangeGen, err = db.Generation(ctx); err != nil {
		return nil, err
	}
	in, _ := enforcer.ChainNames(probe)
	for {
		got, err := h.agent.be.Counters(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("read the agent's kernel: %w", err)
		}
		if _, ok := got[r.Rule.ID]; ok {
			f.Change = time.Since(t1)
			break
		}
		if time.Since(t1) > 30*time.Second {
			return nil, fmt.Errorf("the change after the kill (rule %s) not in the agent's kernel within 30 s", r.Rule.ID)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := waitAvailable(other, probe, 30*time.Second); err != nil {
		return nil, fmt.Errorf("after the kill: %w", err)
	}
	f.Available = time.Since(t1)
	for {
		reports, err := db.HostReports(ctx)
		if err != nil {
			return nil, err
		}
		if rep, ok := reports[h.agent.hostID]; ok && rep.LastSeen.After(t0) && rep.AppliedGeneration >= f.ChangeGen {
			f.Stored, f.StoredSeen = time.Since(t0), rep.LastSeen
			break
		}
		if time.Since(t0) > 30*time.Second {
			return nil, fmt.Errorf("no report of the agent at generation %d in the database within 30 s of the kill", f.ChangeGen)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The killed console comes back for the rest of the load, no sooner
	// than a sixth of it after the kill: its clients meanwhile went to the
	// other.
	select {
	case <-time.After(time.Until(t0.Add(h.cfg.duration / 6))):
	case <-ctx.Done():
	}
	if err := killed.start(); err != nil {
		return nil, fmt.Errorf("restart console %s: %w", killed.name, err)
	}
	f.Restarted = time.Since(t0)
	fmt.Printf("soak: the agent moved to console %s in %s; a change through it reached the agent's kernel in %s; console %s back after %s\n",
		other.name, f.Moved.Round(time.Millisecond), f.Change.Round(time.Millisecond), killed.name, f.Restarted.Round(time.Millisecond))
	return f, nil
}

// followed returns the consoles the agent's log says it followed, in
// order: its own word, beside the sockets read from its namespace.
func (a *agentProc) followed(h *harness) []string {
	b, _ := os.ReadFile(a.logPath)
	var out []string
	for _, l := range bytes.Split(b, []byte("\n")) {
		var e struct {
			Msg     string `json:"msg"`
			Console string `json:"console"`
		}
		if json.Unmarshal(l, &e) != nil || e.Msg != "agent: following the console" {
			continue
		}
		name := e.Console
		for _, c := range h.consoles {
			if e.Console == "https://"+c.agentAddr {
				name = c.name
			}
		}
		out = append(out, name)
	}
	return out
}
