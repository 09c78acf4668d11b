package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-fw/rampart/agent"
	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/fleet"
	"github.com/rampart-fw/rampart/hostview"
	"github.com/rampart-fw/rampart/store"
)

// FleetConfig sets up the fleet benchmark.
type FleetConfig struct {
	Bin         string        // the rampart binary: the console, and one agent
	Agents      int           // hosts, each with its agent in a namespace of its own; the last runs Bin
	SharedRules int           // rules of the group every host holds a server of
	OwnRules    int           // rules of each host's own group
	Changes     int           // one-rule changes timed, after one warm-up
	Idle        time.Duration // the window the idle console's CPU is measured over
	Settle      time.Duration // wait before a memory reading
}

// FleetResults are the figures of one console (bin/rampart serve, in a
// namespace) and its agents, each in a namespace of its own.
type FleetResults struct {
	Config    FleetConfig
	InProcess int // agents run in the benchmark's process; the others run Bin
	Heartbeat time.Duration
	Setup     time.Duration // from exec of the console until the shared group reads available on every host
	ViewBytes int           // the full view frame of one host, as the console sends it at connection

	// Per change, from sending the POST that creates the rule.
	Answer   Sample // until the POST is answered (the commit included)
	All      Sample // until every agent holds it
	PerAgent Sample // until each agent holds it, every agent of every change
	Binary   Sample // until the binary agent's kernel holds it, read from its kernel every Poll
	Poll     time.Duration
	// Instant counts the reconciler's word checked against the kernel's:
	// for one in-process agent per change (in turn), its kernel read the
	// moment its reconciler reported the change applied, and found holding
	// the rule.
	Instant int
	Pause   time.Duration // before each change: the last one's reports, and their write to the store

	// Bytes, over the changes whose window held no heartbeat (Clean of
	// the Changes): per agent, the view stream's frames as Console.Traffic
	// counts them (JSON, before TLS), and what each in-process agent's
	// socket received (TLS records, HTTP/2 frames, the answers to its
	// report included).
	Clean      int
	FrameBytes []float64
	WireBytes  []float64
	// Per change, the reports' bodies received from the agents (Traffic).
	ReportBytes []float64

	// The console process.
	IdleCPU      float64 // cores used over Config.Idle, agents connected, no change
	IdleFrames   uint64  // frames sent over the idle window (heartbeats)
	IdleReports  uint64  // reports received over it
	ChangeCPU    Sample  // CPU time of the console from each POST until every agent holds the change
	ConsoleRSS   int64   // kB, VmRSS after the idle window
	ConsoleHWM   int64   // kB, VmHWM after the changes
	AgentRSS     int64   // kB, VmRSS of the binary agent after the idle window
	AgentRSSLate int64   // kB, after the changes
	AgentHWM     int64   // kB, VmHWM of the binary agent after the changes
}

// fleetAgent is one host of the benchmark.
type fleetAgent struct {
	name, token string
	ns          *NS
	check       *enforcer.NFTables // reads the host's kernel
	a           *agent.Agent       // nil for the binary's
	cmd         *exec.Cmd          // the binary's
	log         *headWriter
	wire        atomic.Int64 // bytes the agent's sockets received
	stop        func()
}

// MeasureFleet runs a console (cfg.Bin serve with the nftables enforcer
// and the agents' endpoint, in a namespace) and cfg.Agents agents, each in
// a namespace of its own bridged to the console's: all but the last in
// this process (agent.New with the nftables backend in its namespace and
// its connections dialled from there), the last as cfg.Bin agent. Every
// host holds a server in one shared group and one in a group of its own.
// It measures the console's CPU and memory with every agent connected,
// the binary agent's memory, and cfg.Changes one-rule changes to the
// shared group, made through the console's API, each timed until every
// agent holds it; after each, every agent's kernel is read (untimed) and
// must hold the rule.
func MeasureFleet(ctx context.Context, cfg FleetConfig, dir string) (res FleetResults, err error) {
	res = FleetResults{Config: cfg, InProcess: cfg.Agents - 1, Poll: time.Millisecond, Pause: 200 * time.Millisecond}
	if cfg.Agents < 2 || cfg.Agents > 200 {
		return res, fmt.Errorf("fleet benchmark: %d agents, want 2 to 200", cfg.Agents)
	}
	dbPath := filepath.Join(dir, "rampart.db")
	f, err := newFleetData(ctx, dbPath, cfg)
	if err != nil {
		return res, err
	}
	defer f.db.Close()

	// The network: the console's namespace holds a bridge, each host's
	// namespace a veth pair onto it.
	core, err := NewNS("core")
	if err != nil {
		return res, err
	}
	defer core.Close()
	for _, args := range [][]string{
		{"link", "add", "br0", "type", "bridge"},
		{"addr", "add", "10.99.0.1/16", "dev", "br0"},
		{"link", "set", "br0", "up"},
	} {
		if err := run(append([]string{"ip", "-n", core.Name}, args...)...); err != nil {
			return res, err
		}
	}
	agents := make([]*fleetAgent, cfg.Agents)
	defer func() {
		for _, a := range agents {
			if a != nil {
				a.close()
			}
		}
	}()
	for i := range agents {
		fa := &fleetAgent{name: f.hosts[i], token: f.tokens[i]}
		agents[i] = fa
		if fa.ns, err = NewNS(fmt.Sprintf("h%d", i)); err != nil {
			return res, err
		}
		peer := fmt.Sprintf("h%d", i)
		addr := fmt.Sprintf("10.99.%d.%d/16", 1+i/250, 1+i%250)
		for _, args := range [][]string{
			{"ip", "-n", core.Name, "link", "add", peer, "type", "veth", "peer", "name", "uplink", "netns", fa.ns.Name},
			{"ip", "-n", core.Name, "link", "set", peer, "master", "br0", "up"},
			{"ip", "-n", fa.ns.Name, "addr", "add", addr, "dev", "uplink"},
			{"ip", "-n", fa.ns.Name, "link", "set", "uplink", "up"},
		} {
			if err := run(args...); err != nil {
				return res, err
			}
		}
		if fa.check, err = enforcer.NewNFTables(enforcer.WithNetNS(fa.ns.FD())); err != nil {
			return res, err
		}
	}

	// The console.
	t0 := time.Now()
	const agentAddr = "10.99.0.1:7443"
	con, _, err := startServe(cfg.Bin, dbPath, "nftables", core, "--host-name", "console",
		"--agent-listen", agentAddr, "--agent-names", "10.99.0.1")
	if err != nil {
		return res, err
	}
	defer con.stop()
	res.Heartbeat = fleet.DefaultLostAfter / 3
	conPid := con.cmd.Process.Pid
	client := con.client(4)
	base := "http://" + con.addr
	url := "https://" + agentAddr
	for i, fa := range agents {
		if i == len(agents)-1 {
			err = fa.startBinary(cfg.Bin, url, filepath.Join(dir, fa.name))
		} else {
			err = fa.startInProcess(url, filepath.Join(dir, fa.name))
		}
		if err != nil {
			return res, fmt.Errorf("agent %s: %w", fa.name, err)
		}
	}
	api := putAPI{client: client, base: base + "/instance/v1/zones/" + f.zone + "/security_groups", secret: f.secret, timeout: time.Minute}
	if err := api.waitAvailable(f.shared); err != nil {
		return res, fmt.Errorf("the shared group on every host: %w (binary agent: %s)", err, agents[len(agents)-1].log)
	}
	res.Setup = time.Since(t0)
	tr, err := scrapeTraffic(client, base)
	if err != nil {
		return res, err
	}
	if tr.Streams != int64(cfg.Agents) {
		return res, fmt.Errorf("%d view streams open, want %d", tr.Streams, cfg.Agents)
	}
	if res.ViewBytes, err = fullViewBytes(ctx, f.db, f.hostIDs[0]); err != nil {
		return res, err
	}

	// Idle: every agent connected, no change.
	time.Sleep(cfg.Settle)
	before, err := scrapeTraffic(client, base)
	if err != nil {
		return res, err
	}
	cpu0, err := cpuTime(conPid)
	if err != nil {
		return res, err
	}
	w0 := time.Now()
	time.Sleep(cfg.Idle)
	cpu1, err := cpuTime(conPid)
	if err != nil {
		return res, err
	}
	res.IdleCPU = float64(cpu1-cpu0) / float64(time.Since(w0))
	after, err := scrapeTraffic(client, base)
	if err != nil {
		return res, err
	}
	res.IdleFrames, res.IdleReports = after.Frames-before.Frames, after.Reports-before.Reports
	if res.ConsoleRSS, err = procStatus(conPid, "VmRSS"); err != nil {
		return res, err
	}
	bin := agents[len(agents)-1]
	if res.AgentRSS, err = procStatus(bin.cmd.Process.Pid, "VmRSS"); err != nil {
		return res, err
	}

	// The changes.
	sharedIn, _ := enforcer.ChainNames(f.shared)
	for i := -1; i < cfg.Changes; i++ {
		time.Sleep(res.Pause)
		port := 4000 + i + 1
		if err := f.change(ctx, &res, agents, api, client, base, conPid, sharedIn, port, (i+1)%res.InProcess, i >= 0); err != nil {
			return res, fmt.Errorf("change %d: %w", i+1, err)
		}
	}
	if res.ConsoleHWM, err = procStatus(conPid, "VmHWM"); err != nil {
		return res, err
	}
	if res.AgentRSSLate, err = procStatus(bin.cmd.Process.Pid, "VmRSS"); err != nil {
		return res, err
	}
	if res.AgentHWM, err = procStatus(bin.cmd.Process.Pid, "VmHWM"); err != nil {
		return res, err
	}
	return res, nil
}

// fleetData is the fleet benchmark's database, filled through the store.
type fleetData struct {
	db                   *store.DB
	org, zone, secret    string
	shared               string // the group every host holds
	hosts, tokens        []string
	hostIDs              []string
	sharedRules, perHost int
}

func newFleetData(ctx context.Context, dsn string, cfg FleetConfig) (*fleetData, error) {
	db, err := store.Open(ctx, dsn, []string{"fr-par-1"})
	if err != nil {
		return nil, err
	}
	f := &fleetData{db: db, zone: "fr-par-1"}
	fail := func(err error) (*fleetData, error) {
		db.Close()
		return nil, fmt.Errorf("fill the fleet's database: %w", err)
	}
	org, err := db.EnsureOrganization(ctx, "bench")
	if err != nil {
		return fail(err)
	}
	f.org = org.ID
	if _, f.secret, err = db.CreateToken(ctx, f.org, "bench"); err != nil {
		return fail(err)
	}
	group := func(name string, g, rules int) (string, error) {
		grp, err := db.CreateGroup(ctx, f.org, f.zone, store.GroupInput{Name: name, Stateful: true,
			InboundDefaultPolicy: store.Drop, OutboundDefaultPolicy: store.Accept})
		if err != nil {
			return "", err
		}
		if rules > 0 {
			if _, err := db.SetRules(ctx, f.org, f.zone, grp.ID, RuleInputs(g, rules)); err != nil {
				return "", err
			}
		}
		return grp.ID, nil
	}
	if f.shared, err = group("shared", 0, cfg.SharedRules); err != nil {
		return fail(err)
	}
	for i := range cfg.Agents {
		name := fmt.Sprintf("h%02d", i+1)
		h, token, err := fleet.CreateHost(ctx, db, name, time.Hour)
		if err != nil {
			return fail(err)
		}
		own, err := group("own-"+name, i+1, cfg.OwnRules)
		if err != nil {
			return fail(err)
		}
		for k, g := range []string{f.shared, own} {
			if _, err := db.CreateServer(ctx, f.org, f.zone, store.ServerInput{Name: fmt.Sprintf("%s-%d", name, k),
				Interface: fmt.Sprintf("vm%d", k), SecurityGroupID: g, Host: name}); err != nil {
				return fail(err)
			}
		}
		f.hosts, f.tokens, f.hostIDs = append(f.hosts, name), append(f.tokens, token), append(f.hostIDs, h.ID)
	}
	return f, nil
}

// fullViewBytes returns the size of the frame that carries a host's full
// view, as the console encodes it for an agent that connects without one.
func fullViewBytes(ctx context.Context, db *store.DB, hostID string) (int, error) {
	snap, err := db.Snapshot(ctx)
	if err != nil {
		return 0, err
	}
	v := hostview.FromSnapshot(hostID, snap.ForHost(hostID))
	b, err := json.Marshal(hostview.Frame{Type: hostview.FrameView, View: &v})
	if err != nil {
		return 0, err
	}
	return len(b) + 1, nil // and its newline
}

// change makes one timed change: a rule created in the shared group
// through the API, timed until every agent holds it; then, untimed, every
// agent's kernel is read, and the rule is deleted again and waited for.
// probe is the in-process agent whose kernel is also polled.
func (f *fleetData) change(ctx context.Context, res *FleetResults, agents []*fleetAgent, api putAPI, client *http.Client,
	base string, conPid int, chain string, port, probe int, record bool) error {
	gen0, err := f.db.Generation(ctx)
	if err != nil {
		return err
	}
	target := gen0 + 1
	// Every in-process agent's reconciler: the moment it reports the
	// shared group at the change's generation (woken by its Watch).
	n := len(agents)
	applied := make([]time.Time, n)
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * time.Second)
	waitErr := make(chan error, n+2)
	// newTags returns the tags of the chain in fa's kernel that are not in
	// before.
	newTags := func(fa *fleetAgent, before map[string]enforcer.Counter) ([]string, error) {
		got, err := fa.check.Counters(ctx, chain)
		if err != nil {
			return nil, fmt.Errorf("agent %s: read its kernel: %w", fa.name, err)
		}
		var tags []string
		for tag := range got {
			if _, ok := before[tag]; !ok {
				tags = append(tags, tag)
			}
		}
		return tags, nil
	}
	// The chain as every kernel holds it before the change.
	before, err := agents[0].check.Counters(ctx, chain)
	if err != nil {
		return err
	}
	var probeTags []string // what the probed agent's kernel held when its reconciler reported
	for i, fa := range agents[:res.InProcess] {
		rec := fa.a.Reconciler()
		wake, cancel := rec.Watch()
		wg.Go(func() {
			defer cancel()
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			for rec.GroupGeneration(f.shared) < target {
				select {
				case <-wake:
				case <-t.C:
					waitErr <- fmt.Errorf("agent %s: the shared group not applied at generation %d within 10 s", fa.name, target)
					return
				}
			}
			applied[i] = time.Now()
			if i == probe {
				tags, err := newTags(fa, before)
				if err != nil {
					waitErr <- err
				}
				probeTags = tags
			}
		})
	}
	// The binary agent's kernel, read every Poll until it holds a rule that
	// was not there.
	bin := agents[n-1]
	wg.Go(func() {
		for time.Now().Before(deadline) {
			tags, err := newTags(bin, before)
			if err != nil {
				waitErr <- err
				return
			}
			if len(tags) > 0 {
				applied[n-1] = time.Now()
				return
			}
			time.Sleep(res.Poll)
		}
		waitErr <- fmt.Errorf("agent %s: its kernel did not hold the change within 10 s", bin.name)
	})
	tr0, err := scrapeTraffic(client, base)
	if err != nil {
		return err
	}
	wire0 := make([]int64, res.InProcess)
	for i, fa := range agents[:res.InProcess] {
		wire0[i] = fa.wire.Load()
	}
	cpu0, err := cpuTime(conPid)
	if err != nil {
		return err
	}
	t0 := time.Now()
	body := fmt.Sprintf(`{"direction":"inbound","protocol":"TCP","action":"accept","ip_range":"192.0.2.0/24","dest_port_from":%d}`, port)
	ruleID, err := api.post(f.shared, body)
	answer := time.Since(t0)
	if err != nil {
		return err
	}
	wg.Wait()
	cpu1, cerr := cpuTime(conPid)
	close(waitErr)
	if err := <-waitErr; err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	var last time.Duration
	per := make(Sample, n)
	for i, at := range applied {
		per[i] = at.Sub(t0)
		last = max(last, per[i])
	}
	// Every report of the change received, then the traffic of the window.
	var tr1 fleet.Traffic
	for {
		if tr1, err = scrapeTraffic(client, base); err != nil {
			return err
		}
		if tr1.Reports-tr0.Reports >= uint64(n) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the answers to the last reports read
	var wire int64
	for i, fa := range agents[:res.InProcess] {
		wire += fa.wire.Load() - wire0[i]
	}
	gen, err := f.db.Generation(ctx)
	if err != nil {
		return err
	}
	if gen != target {
		return fmt.Errorf("the change took generation %d, want %d: another change ran", gen, target)
	}
	if len(probeTags) != 1 || probeTags[0] != ruleID {
		return fmt.Errorf("agent %s: its reconciler reported the change applied while its kernel held %v, not rule %s alone",
			agents[probe].name, probeTags, ruleID)
	}
	// Untimed: every kernel holds the rule.
	for _, fa := range agents {
		got, err := fa.check.Counters(ctx, chain)
		if err != nil {
			return fmt.Errorf("agent %s: read its kernel: %w", fa.name, err)
		}
		if _, ok := got[ruleID]; !ok {
			return fmt.Errorf("agent %s: its kernel's chain %s lacks rule %s", fa.name, chain, ruleID)
		}
	}
	if record {
		res.Answer = append(res.Answer, answer)
		res.All = append(res.All, last)
		res.PerAgent = append(res.PerAgent, per...)
		res.Binary = append(res.Binary, per[n-1])
		res.Instant++
		res.ChangeCPU = append(res.ChangeCPU, cpu1-cpu0)
		res.ReportBytes = append(res.ReportBytes, float64(tr1.ReportBytes-tr0.ReportBytes))
		// A heartbeat in the window would be counted as the change's.
		if tr1.Frames-tr0.Frames == uint64(n) {
			res.Clean++
			res.FrameBytes = append(res.FrameBytes, float64(tr1.FrameBytes-tr0.FrameBytes)/float64(n))
			res.WireBytes = append(res.WireBytes, float64(wire)/float64(res.InProcess))
		}
	}

	// Back to the shared group as it was, on every host; not measured.
	if err := api.delete(f.shared, ruleID); err != nil {
		return err
	}
	deadline = time.Now().Add(10 * time.Second)
	for _, fa := range agents[:res.InProcess] {
		for fa.a.Reconciler().GroupGeneration(f.shared) < target+1 {
			if time.Now().After(deadline) {
				return fmt.Errorf("agent %s: the rule's deletion not applied within 10 s", fa.name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for {
		got, err := agents[n-1].check.Counters(ctx, chain)
		if err != nil {
			return err
		}
		if _, ok := got[ruleID]; !ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent %s: the rule's deletion not in its kernel within 10 s", agents[n-1].name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startInProcess runs the host's agent in this process: the nftables
// backend in its namespace, its connections dialled from there and
// counted.
func (fa *fleetAgent) startInProcess(consoleURL, stateDir string) error {
	be, err := enforcer.NewNFTables(enforcer.WithNetNS(fa.ns.FD()))
	if err != nil {
		return err
	}
	ns := fa.ns
	a, err := agent.New(agent.Config{Consoles: []string{consoleURL}, JoinToken: fa.token, StateDir: stateDir, Backend: be,
		Logger: slog.New(slog.DiscardHandler), Version: "bench",
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := InNS(ns, func() (net.Conn, error) {
				return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			})
			if err != nil {
				return nil, err
			}
			return countingConn{Conn: c, n: &fa.wire}, nil
		}})
	if err != nil {
		be.Close()
		return err
	}
	fa.a = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	fa.stop = func() { cancel(); <-done; be.Close() }
	return nil
}

// startBinary runs the host's agent as `rampart agent` in its namespace,
// as a host runs it.
func (fa *fleetAgent) startBinary(bin, consoleURL, stateDir string) error {
	fa.log = &headWriter{}
	fa.cmd = exec.Command("ip", "netns", "exec", fa.ns.Name, bin, "agent", "--console", consoleURL,
		"--join-token", fa.token, "--state-dir", stateDir, "--enforcer", "nftables")
	fa.cmd.Stdout, fa.cmd.Stderr = io.Discard, fa.log
	if err := fa.cmd.Start(); err != nil {
		return err
	}
	cmd := fa.cmd
	fa.stop = func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	return nil
}

func (fa *fleetAgent) close() {
	if fa.stop != nil {
		fa.stop()
	}
	if fa.check != nil {
		fa.check.Close()
	}
	if fa.ns != nil {
		fa.ns.Close()
	}
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// post creates a rule in group id from a JSON body, checks the answer,
// and returns the rule's ID.
func (a putAPI) post(id, body string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, a.base+"/"+id+"/rules", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Auth-Token", a.secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("POST a rule to %s: %w", id, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", fmt.Errorf("POST a rule to %s: %w", id, err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("POST a rule to %s: status %d: %s", id, resp.StatusCode, snippet(b))
	}
	var out struct {
		Rule struct {
			ID string `json:"id"`
		} `json:"rule"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Rule.ID == "" {
		return "", fmt.Errorf("POST a rule to %s: an answer without the rule's ID: %s", id, snippet(b))
	}
	return out.Rule.ID, nil
}

// delete deletes rule ruleID of group id and checks the answer.
func (a putAPI) delete(id, ruleID string) error {
	req, err := http.NewRequest(http.MethodDelete, a.base+"/"+id+"/rules/"+ruleID, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", a.secret)
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("DELETE rule %s: %w", ruleID, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("DELETE rule %s: status %d: %s", ruleID, resp.StatusCode, snippet(b))
	}
	return nil
}

// scrapeTraffic reads the agents' endpoint's totals from the console's
// /metrics (Console.Traffic).
func scrapeTraffic(client *http.Client, base string) (fleet.Traffic, error) {
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return fleet.Traffic{}, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fleet.Traffic{}, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	return parseTraffic(resp.Body)
}

// parseTraffic reads the rampart_agent_* samples of a /metrics page.
func parseTraffic(r io.Reader) (fleet.Traffic, error) {
	var t fleet.Traffic
	seen := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch name {
		case "rampart_agent_streams":
			t.Streams = int64(v)
		case "rampart_agent_frames_total":
			t.Frames = uint64(v)
		case "rampart_agent_frame_bytes_total":
			t.FrameBytes = uint64(v)
		case "rampart_agent_reports_total":
			t.Reports = uint64(v)
		case "rampart_agent_report_bytes_total":
			t.ReportBytes = uint64(v)
		default:
			continue
		}
		seen++
	}
	if err := sc.Err(); err != nil {
		return t, err
	}
	if seen != 5 {
		return t, fmt.Errorf("/metrics holds %d of the 5 rampart_agent_* samples: not a console serving agents", seen)
	}
	return t, nil
}

// cpuTime returns the CPU time used so far by every thread of process pid
// (/proc/PID/task/*/schedstat, in nanoseconds: finer than the clock ticks
// of /proc/PID/stat).
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // a thread that just ended
		}
		f := bytes.Fields(b)
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("schedstat of %d/%s: %w", pid, t.Name(), err)
		}
		total += ns
	}
	return time.Duration(total), nil
}

// procStatus reads a kB field of /proc/PID/status (VmRSS, VmHWM).
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s for pid %d", field, pid)
}
