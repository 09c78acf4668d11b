package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

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
// its server to. Clients are spread over the consoles (each client's home
// console), and their servers over the hosts.
func (h *harness) setUp() ([]*client, error) {
	var shared groupAnswer
	if _, err := h.consoles[0].do("POST", "/security_groups", map[string]any{"name": "shared", "enable_default_security": false}, &shared); err != nil {
		return nil, err
	}
	clients := make([]*client, h.cfg.clients)
	errs := make(chan error, len(clients))
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{n: i, home: i % len(h.consoles), shared: shared.SecurityGroup.ID, maxRules: h.cfg.maxRules,
				rng: rand.New(rand.NewPCG(uint64(i), 42))}
			var g groupAnswer
			if _, err := c.do(h, "POST", "/security_groups", map[string]any{"name": fmt.Sprintf("soak-%03d", i),
				"stateful": i%2 == 0, "inbound_default_policy": "drop", "enable_default_security": i%3 != 0}, &g); err != nil {
				errs <- err
				return
			}
			c.group = g.SecurityGroup.ID
			server := map[string]any{"name": fmt.Sprintf("vm-%03d", i), "interface": fmt.Sprintf("sk%d", i), "security_group": c.group}
			if host := h.hostFor(i); host != "" {
				server["host"] = host
			}
			var s serverAnswer
			if _, err := c.do(h, "POST", "/servers", server, &s); err != nil {
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

// load is what the clients did, for the report.
type load struct {
	Requests                   int64
	Elapsed                    time.Duration
	P50, P99                   time.Duration
	ServerErrors, Refused, Cut int64
}

func (l load) rate() float64 { return float64(l.Requests) / l.Elapsed.Seconds() }

func (s *stats) summary(elapsed time.Duration) load {
	s.mu.Lock()
	defer s.mu.Unlock()
	slices.Sort(s.latencies)
	q := func(p float64) time.Duration {
		if len(s.latencies) == 0 {
			return 0
		}
		return s.latencies[int(p*float64(len(s.latencies)-1))]
	}
	l := load{Requests: s.requests.Load(), Elapsed: elapsed, P50: q(0.5), P99: q(0.99),
		ServerErrors: s.serverErrors.Load(), Refused: s.refused.Load(), Cut: s.cut.Load()}
	fmt.Printf("soak: %d requests in %s: %.0f requests/s, p50 %s, p99 %s; 5xx %d, refused (4xx) %d, cut by the crash %d\n",
		l.Requests, elapsed.Round(time.Millisecond), l.rate(), l.P50.Round(time.Microsecond),
		l.P99.Round(time.Microsecond), l.ServerErrors, l.Refused, l.Cut)
	return l
}

// client owns one group and one server, and keeps a model of what the
// database must hold: the rule IDs in order and the server's group. A
// request cut by the crash has an unknown outcome: the client reads the
// state back as soon as the server answers again and checks that it is
// one of the two the request allows.
type client struct {
	n                   int
	home                int // index of the console it talks to while that one is up
	group, shared       string
	server, serverGroup string
	rules               []string
	maxRules            int
	rng                 *rand.Rand
	pending             func(rules []string, serverGroup string) bool
	resolved            int // requests of the client cut by a kill, their outcome read back and found allowed
	failures            []string
}

// do sends one API request through the client's console, or through
// another while that one is down, as a load balancer would.
func (c *client) do(h *harness, method, path string, body, out any) (int, error) {
	return h.via(c.home).do(method, path, body, out)
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
	if _, err := c.do(h, "GET", "/security_groups/"+c.group+"/rules", nil, &got); err != nil {
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
	if _, err := c.do(h, "GET", "/servers/"+c.server, nil, &s); err != nil {
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
	c.resolved++
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
			return c.do(h, "GET", "/security_groups/"+c.group+"/rules", nil, nil)
		}
		if op < 25 {
			return c.do(h, "GET", "/security_groups/"+c.group, nil, nil)
		}
		return c.do(h, "GET", "/security_groups?per_page=20", nil, nil)
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
		status, err := c.do(h, "POST", "/security_groups/"+c.group+"/rules", body, &out)
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
		status, err := c.do(h, "PATCH", "/security_groups/"+c.group+"/rules/"+id, map[string]any{"position": to + 1}, nil)
		return c.settle(status, err, next)
	case op < 85 && len(c.rules) > 0: // delete
		i := c.rng.IntN(len(c.rules))
		next := slices.Delete(slices.Clone(c.rules), i, i+1)
		status, err := c.do(h, "DELETE", "/security_groups/"+c.group+"/rules/"+c.rules[i], nil, nil)
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
		status, err := c.do(h, "PUT", "/security_groups/"+c.group+"/rules", map[string]any{"rules": body}, &out)
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
		status, err := c.do(h, "PATCH", "/servers/"+c.server, map[string]any{"security_group": map[string]string{"id": target}}, nil)
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
