package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// DatapathConfig is one ruleset under which connections are counted.
type DatapathConfig struct {
	Name    string
	Servers int    // servers configured (1 or more)
	Kind    string // "none", "nftables" or "iptables"
}

// DatapathResult is the connection rate of one configuration.
type DatapathResult struct {
	Config DatapathConfig
	Rules  int       // rules of the ruleset loaded in the router (0: none)
	Rates  []float64 // connections per second, one per run
	Conns  []int     // connections made, one per run
	// Accepted is, per run, how much the packet counter of the rule that
	// accepts the client's new connections moved (0 without a ruleset):
	// at least Conns, or the run is an error.
	Accepted []uint64
}

// Rate returns the median rate.
func (r DatapathResult) Rate() float64 { return MedianFloat(r.Rates) }

// Datapath addresses: client 10.250.0.2, server 10.250.1.2, the router
// between them (10.250.0.1, 10.250.1.1) runs the ruleset.
const (
	dpServerAddr = "10.250.1.2"
	dpClientNet  = "10.250.0.0/24"
	dpIface      = "vs1" // the server's interface in the router
	dpAllowID    = "allow-client"
)

// The datapath ruleset: the server's group has DatapathRules rules that do
// not match the client, then accepts TCP DatapathPort; with more than one
// server, the others are spread over DatapathGroups groups like it.
const (
	DatapathPort   = 8080
	DatapathRules  = 50
	DatapathGroups = 200
)

// datapathSnapshot is the desired state with n servers: the server under
// test (interface vs1) in a group of 50 rules (like the other groups'),
// which accepts TCP 8080 from the client's network only after them, so
// that a new connection walks the whole chain; and n-1 other servers on
// interfaces that do not exist (d1, d2, …), spread over 200 groups.
func datapathSnapshot(n int) store.Snapshot {
	groups := 1
	if n > 1 {
		groups = DatapathGroups
	}
	snap := Snapshot(Scale{Servers: 0, Groups: groups, Rules: DatapathRules})
	g0 := snap.Groups[0].ID
	allow, _ := store.ParseIPRange(dpClientNet) // a constant prefix: no error
	snap.Rules[g0] = append(snap.Rules[g0], store.Rule{
		ID: dpAllowID, GroupID: g0, Direction: store.Inbound, Protocol: store.TCP,
		Action: store.Accept, IPRange: allow, DestPortFrom: DatapathPort, Position: DatapathRules + 1, Editable: true,
	})
	snap.Servers = append(snap.Servers, store.Server{ID: "srv-test", Type: store.Instance, Interface: dpIface, SecurityGroup: store.ServerRef{ID: g0}})
	for s := 1; s < n; s++ {
		snap.Servers = append(snap.Servers, store.Server{
			ID: fmt.Sprintf("srv-%05d", s), Type: store.Instance, Interface: fmt.Sprintf("d%d", s),
			SecurityGroup: store.ServerRef{ID: snap.Groups[s%groups].ID},
		})
	}
	return snap
}

type dpTopo struct {
	client, router, server *NS
}

func (t *dpTopo) close() {
	for _, ns := range []*NS{t.client, t.router, t.server} {
		if ns != nil {
			ns.Close()
		}
	}
}

func newDPTopo() (*dpTopo, error) {
	t := &dpTopo{}
	var err error
	fail := func(err error) (*dpTopo, error) {
		t.close()
		return nil, err
	}
	if t.router, err = NewNS("dr"); err != nil {
		return fail(err)
	}
	if t.client, err = NewNS("dc"); err != nil {
		return fail(err)
	}
	if t.server, err = NewNS("ds"); err != nil {
		return fail(err)
	}
	r := t.router.Name
	steps := [][]string{
		{"ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "-n", r, "link", "add", "rc", "type", "veth", "peer", "name", "eth0", "netns", t.client.Name},
		{"ip", "-n", r, "link", "add", dpIface, "type", "veth", "peer", "name", "eth0", "netns", t.server.Name},
		{"ip", "-n", r, "addr", "add", "10.250.0.1/24", "dev", "rc"},
		{"ip", "-n", r, "addr", "add", "10.250.1.1/24", "dev", dpIface},
		{"ip", "-n", r, "link", "set", "rc", "up"},
		{"ip", "-n", r, "link", "set", dpIface, "up"},
		{"ip", "-n", t.client.Name, "addr", "add", "10.250.0.2/24", "dev", "eth0"},
		{"ip", "-n", t.client.Name, "link", "set", "eth0", "up"},
		{"ip", "-n", t.client.Name, "route", "add", "default", "via", "10.250.0.1"},
		{"ip", "-n", t.server.Name, "addr", "add", dpServerAddr + "/24", "dev", "eth0"},
		{"ip", "-n", t.server.Name, "link", "set", "eth0", "up"},
		{"ip", "-n", t.server.Name, "route", "add", "default", "via", "10.250.1.1"},
		// The client closes with RST (linger 0): no TIME_WAIT to run out
		// of ports; its wide port range and the router's short conntrack
		// timeouts keep long runs steady.
		{"ip", "netns", "exec", t.client.Name, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return fail(err)
		}
	}
	return t, nil
}

// routerConntrack shortens the router's conntrack timeouts of closed
// connections, once conntrack is active there (the first stateful ruleset).
func (t *dpTopo) routerConntrack() {
	_ = t.router.Run("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_close=1",
		"net.netfilter.nf_conntrack_tcp_timeout_time_wait=1", "net.netfilter.nf_conntrack_tcp_timeout_fin_wait=1")
}

// DatapathResults are the datapath figures and the setup they were
// measured with.
type DatapathResults struct {
	Workers    int           // connecting goroutines
	Duration   time.Duration // of each run
	Port       int           // the server's TCP port
	GroupRules int           // rules of each group before the accepting one
	Groups     int           // groups with more than one server
	Configs    []DatapathResult
}

// MeasureDatapath counts TCP connections (connect, then close) per second
// from the client namespace to the server namespace through the router,
// for each configuration, in rounds (runs rounds of dur each) in which the
// configurations take turns, in alternating order. Each run reads the
// counter of the rule that accepts the connections before and after, and
// fails unless it moved by at least the connections made.
func MeasureDatapath(ctx context.Context, configs []DatapathConfig, runs, workers int, dur time.Duration, tmp string) (DatapathResults, error) {
	res := DatapathResults{Workers: workers, Duration: dur, Port: DatapathPort, GroupRules: DatapathRules, Groups: DatapathGroups}
	var err error
	res.Configs, err = measureDatapath(ctx, configs, runs, workers, dur, tmp)
	return res, err
}

func measureDatapath(ctx context.Context, configs []DatapathConfig, runs, workers int, dur time.Duration, tmp string) ([]DatapathResult, error) {
	t, err := newDPTopo()
	if err != nil {
		return nil, err
	}
	defer t.close()
	be, err := enforcer.NewNFTables(enforcer.WithNetNS(t.router.FD()))
	if err != nil {
		return nil, err
	}
	defer be.Close()
	ln, err := InNS(t.server, func() (net.Listener, error) { return net.Listen("tcp", fmt.Sprintf(":%d", DatapathPort)) })
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	for i := 0; i < 2; i++ {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue
				}
				c.Close()
			}
		}()
	}

	rulesets := map[string]*enforcer.Ruleset{}
	iptFiles := map[string]string{}
	iptRules := map[string]int{}
	for _, c := range configs {
		key := fmt.Sprint(c.Servers)
		if rulesets[key] == nil {
			rulesets[key] = enforcer.Compile(datapathSnapshot(c.Servers))
			if errs := rulesets[key].Errors; len(errs) > 0 {
				return nil, fmt.Errorf("datapath ruleset of %d servers: %v", c.Servers, errs)
			}
			v4 := IPTablesRestore(rulesets[key], false)
			f := filepath.Join(tmp, "dp-"+key+".v4")
			if err := os.WriteFile(f, []byte(v4), 0o600); err != nil {
				return nil, err
			}
			iptFiles[key], iptRules[key] = f, strings.Count(v4, "\n-A ")
		}
	}
	apply := func(c DatapathConfig) error {
		key := fmt.Sprint(c.Servers)
		// Whatever the previous configuration left: no error when absent.
		_ = t.router.Exec(nil, "nft", "delete table ip filter")
		if err := be.Remove(ctx); err != nil {
			return err
		}
		switch c.Kind {
		case "nftables":
			return be.Apply(ctx, nil, rulesets[key])
		case "iptables":
			return t.router.Exec(nil, "iptables-restore", iptFiles[key])
		case "none":
			return nil
		}
		return fmt.Errorf("unknown ruleset kind %q", c.Kind)
	}
	g0in, _ := enforcer.ChainNames(GroupID(0))
	// accepted reads the packet counter of the rule that accepts the
	// client's new connections, in the ruleset that c loaded.
	accepted := func(c DatapathConfig) (uint64, error) {
		switch c.Kind {
		case "nftables":
			cs, err := be.Counters(ctx, g0in)
			if err != nil {
				return 0, err
			}
			n, ok := cs[dpAllowID]
			if !ok {
				return 0, fmt.Errorf("chain %s has no rule %s", g0in, dpAllowID)
			}
			return n.Packets, nil
		case "iptables":
			out, err := t.router.Output("iptables-save", "-c", "-t", "filter")
			if err != nil {
				return 0, err
			}
			return iptAcceptCount(out)
		}
		// No ruleset: there must be none at all in the router.
		out, err := t.router.Output("nft", "list", "ruleset")
		if err != nil {
			return 0, err
		}
		if s := strings.TrimSpace(string(out)); s != "" {
			return 0, fmt.Errorf("the router holds a ruleset: %s", firstLines(s, 3))
		}
		return 0, nil
	}

	results := make([]DatapathResult, len(configs))
	for i, c := range configs {
		results[i].Config = c
		switch c.Kind {
		case "nftables":
			for _, ch := range allChains(rulesets[fmt.Sprint(c.Servers)]) {
				results[i].Rules += len(ch.Rules)
			}
		case "iptables":
			results[i].Rules = iptRules[fmt.Sprint(c.Servers)]
		}
	}
	for round := -1; round < runs; round++ {
		for _, i := range Order(round+1, len(configs)) {
			c := configs[i]
			if err := apply(c); err != nil {
				return nil, fmt.Errorf("datapath %s: %w", c.Name, err)
			}
			t.routerConntrack()
			d := dur
			if round < 0 {
				d = dur / 4 // warm-up round: not recorded
			}
			before, err := accepted(c)
			if err != nil {
				return nil, fmt.Errorf("datapath %s: before the run: %w", c.Name, err)
			}
			n, errs, err := connectLoop(t.client, workers, d)
			if err != nil {
				return nil, fmt.Errorf("datapath %s: %w", c.Name, err)
			}
			after, err := accepted(c)
			if err != nil {
				return nil, fmt.Errorf("datapath %s: after the run: %w", c.Name, err)
			}
			if err := checkDatapathRun(c, n, errs, before, after); err != nil {
				return nil, err
			}
			if round >= 0 {
				results[i].Rates = append(results[i].Rates, float64(n)/d.Seconds())
				results[i].Conns = append(results[i].Conns, n)
				results[i].Accepted = append(results[i].Accepted, after-before)
			}
		}
	}
	if err := apply(DatapathConfig{Kind: "none"}); err != nil {
		return nil, fmt.Errorf("datapath: clear the router: %w", err)
	}
	return results, nil
}

// checkDatapathRun refuses a run that is not a measurement of c: a failed
// connection attempt, no connection, or (with a ruleset) an accepting
// rule whose counter moved by less than the connections made, which would
// mean that the traffic took another path than the ruleset under test.
func checkDatapathRun(c DatapathConfig, conns, failed int, before, after uint64) error {
	switch {
	case failed > 0:
		return fmt.Errorf("datapath %s: %d connection attempts failed (%d made)", c.Name, failed, conns)
	case conns == 0:
		return fmt.Errorf("datapath %s: no connection made", c.Name)
	case after < before:
		return fmt.Errorf("datapath %s: the accepting rule's counter went back from %d to %d", c.Name, before, after)
	case c.Kind != "none" && after-before < uint64(conns):
		return fmt.Errorf("datapath %s: the accepting rule counted %d packets for %d connections: the traffic did not go through the ruleset", c.Name, after-before, conns)
	}
	return nil
}

// iptAcceptCount returns the packet counter of the one rule of an
// `iptables-save -c` dump that accepts the client's connections to the
// server's port.
func iptAcceptCount(dump []byte) (uint64, error) {
	var found []uint64
	for _, l := range strings.Split(string(dump), "\n") {
		if !strings.Contains(l, " -s "+dpClientNet+" ") || !strings.Contains(l, fmt.Sprintf(" --dport %d ", DatapathPort)) || !strings.HasSuffix(l, " -j ACCEPT") {
			continue
		}
		// "[packets:bytes] -A chain …"
		var pk, by uint64
		if _, err := fmt.Sscanf(l, "[%d:%d]", &pk, &by); err != nil {
			return 0, fmt.Errorf("iptables-save counter of %q: %w", l, err)
		}
		found = append(found, pk)
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("iptables-save shows %d rules accepting %s to port %d, want 1", len(found), dpClientNet, DatapathPort)
	}
	return found[0], nil
}

// connectLoop runs workers goroutines in the client namespace, each
// connecting to the server and closing (RST) in a loop for d; it returns
// the connections made and the failed attempts.
func connectLoop(client *NS, workers int, d time.Duration) (int, int, error) {
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	deadline := time.Now().Add(d)
	addr := &net.TCPAddr{IP: net.ParseIP(dpServerAddr), Port: DatapathPort}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := InNS(client, func() (struct{}, error) {
				for time.Now().Before(deadline) {
					c, err := net.DialTCP("tcp", nil, addr)
					if err != nil {
						failed.Add(1)
						continue
					}
					_ = c.SetLinger(0)
					c.Close()
					ok.Add(1)
				}
				return struct{}{}, nil
			})
			if err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	return int(ok.Load()), int(failed.Load()), <-errc
}
