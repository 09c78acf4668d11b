package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
)

// PutResults are the figures of PUT …/security_groups/{id}/rules with the
// real enforcer: bin/rampart serving with --enforcer nftables in a network
// namespace of its own, one server per engine on the same data, every PUT
// followed until the kernel holds it.
type PutResults struct {
	Scale       Scale // of the database served
	KernelRules int   // rules the database compiles to
	Rules       int   // rules of each PUT
	Workers     int
	Duration    time.Duration
	Engines     []EnginePut
}

// EnginePut are the PUT figures of the server on one engine.
type EnginePut struct {
	Engine string
	// Load is the PUTs per second of each run, counted until every group
	// written reads "available" (the kernel holds its last PUT).
	Load LoadResult
	// Settle is, per run, the time from the last answer until then.
	Settle Sample
	// One PUT at a time: the answer alone, and from sending it until the
	// group reads "available".
	Answer, ToKernel Sample
}

// Polling of a group's state after a PUT: how often, and for how long.
const (
	statePoll    = 200 * time.Microsecond
	stateTimeout = 30 * time.Second
)

// putAPI drives the rules of groups through one server's API.
type putAPI struct {
	client  *http.Client
	base    string // …/zones/{zone}/security_groups
	secret  string
	timeout time.Duration // of waitAvailable
}

// put replaces the rules of group id with body, checks the answer, and
// returns the IDs of the rules it lists (the group's rules, system ones
// included).
func (a putAPI) put(id string, body []byte, rules int) ([]string, error) {
	req, err := http.NewRequest(http.MethodPut, a.base+"/"+id+"/rules", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Auth-Token", a.secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("PUT rules of %s: %w", id, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("PUT rules of %s: %w", id, err)
	}
	if err := putCheck(rules)(resp.StatusCode, b); err != nil {
		return nil, fmt.Errorf("PUT rules of %s: %w", id, err)
	}
	return ruleIDs(b)
}

// ruleIDs returns the IDs of the rules of a PUT …/rules answer.
func ruleIDs(answer []byte) ([]string, error) {
	var a struct {
		Rules []struct {
			ID string `json:"id"`
		} `json:"rules"`
	}
	if err := json.Unmarshal(answer, &a); err != nil {
		return nil, fmt.Errorf("decode the PUT answer: %w", err)
	}
	ids := make([]string, len(a.Rules))
	for i, r := range a.Rules {
		if r.ID == "" {
			return nil, fmt.Errorf("the PUT answer lists a rule without an ID")
		}
		ids[i] = r.ID
	}
	return ids, nil
}

// waitAvailable polls group id until the API reports it "available": the
// enforcer has applied the group's current generation to the kernel.
// "syncing_error", a wrong answer or a.timeout is an error.
func (a putAPI) waitAvailable(id string) error {
	check := groupCheck(id)
	deadline := time.Now().Add(a.timeout)
	for {
		req, err := http.NewRequest(http.MethodGet, a.base+"/"+id, nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-Auth-Token", a.secret)
		resp, err := a.client.Do(req)
		if err != nil {
			return fmt.Errorf("GET group %s: %w", id, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("GET group %s: %w", id, err)
		}
		if err := check(resp.StatusCode, b); err != nil {
			return fmt.Errorf("GET group %s: %w", id, err)
		}
		switch {
		case bytes.Contains(b, []byte(`"state":"available"`)):
			return nil
		case bytes.Contains(b, []byte(`"state":"syncing_error"`)):
			return fmt.Errorf("group %s: syncing_error: %s", id, snippet(b))
		case time.Now().After(deadline):
			return fmt.Errorf("group %s not available after %s: %s", id, a.timeout, snippet(b))
		}
		time.Sleep(statePoll)
	}
}

// kernelTags are the tags of a group's chains that are not rule IDs.
var kernelTags = []string{enforcer.TagDefaultIn, enforcer.TagDefaultOut, enforcer.TagEstablishedIn, enforcer.TagEstablishedOut}

// checkKernel reads group id's two chains from the kernel (through be, in
// the server's namespace) and checks that they hold exactly the rules ids
// and the group's fixed rules: the PUT reached the kernel, and the rules
// it replaced are gone.
func checkKernel(ctx context.Context, be enforcer.Backend, id string, ids []string) error {
	in, out := enforcer.ChainNames(id)
	got, err := be.Counters(ctx, in, out)
	if err != nil {
		return fmt.Errorf("read group %s from the kernel: %w", id, err)
	}
	for _, r := range ids {
		if _, ok := got[r]; !ok {
			return fmt.Errorf("the kernel's chains of group %s lack rule %s of the last PUT", id, r)
		}
	}
	for tag := range got {
		if !slices.Contains(ids, tag) && !slices.Contains(kernelTags, tag) {
			return fmt.Errorf("the kernel's chains of group %s still hold rule %s, which the last PUT replaced", id, tag)
		}
	}
	return nil
}

// putServer is one engine's server of the PUT benchmark.
type putServer struct {
	e    *EnginePut
	proc *serveProc
	ns   *NS
	be   *enforcer.NFTables // reads the server's kernel
	api  putAPI
}

func (s *putServer) close() {
	if s.be != nil {
		s.be.Close()
	}
	if s.proc != nil {
		s.proc.stop()
	}
	if s.ns != nil {
		s.ns.Close()
	}
}

// MeasurePut fills a SQLite database in dir at sc, copies it to each
// other engine of engines, serves each with bin and the nftables enforcer
// in a network namespace of its own, and measures PUTs of DetailRules
// rules: n one at a time on each, each timed from sending it until the
// group reads "available"; then runs rounds of d in which workers
// connections PUT to a group each, every round timed until all their
// groups read "available". The engines take turns in alternating order.
// Every answer is checked, and after every wait the group's chains are
// read from the kernel and compared with the last PUT's answer.
func MeasurePut(ctx context.Context, bin, dir string, sc Scale, engines []Engine, runs, workers, n int, d time.Duration) (PutResults, error) {
	res := PutResults{Scale: sc, Rules: DetailRules, Workers: workers, Duration: d}
	if sc.Groups < workers+1 {
		return res, fmt.Errorf("PUT benchmark: %d groups, need %d", sc.Groups, workers+1)
	}
	if len(engines) == 0 || engines[0].Name != "SQLite" {
		return res, fmt.Errorf("PUT benchmark: the first engine must be SQLite, which the data is made on")
	}
	for _, c := range allChains(enforcer.Compile(Snapshot(sc))) {
		res.KernelRules += len(c.Rules)
	}
	dsn := filepath.Join(dir, "rampart.db")
	ds, err := Populate(ctx, dsn, sc)
	if err != nil {
		return res, err
	}
	groups := make([]string, len(ds.Groups))
	for i, g := range ds.Groups {
		groups[i] = g.ID
	}
	zone, secret := ds.Zone, ds.Secret
	dsns := []string{dsn}
	for _, e := range engines[1:] {
		cp, cdsn, err := ds.CopyTo(ctx, e)
		if err != nil {
			ds.DB.Close()
			return res, err
		}
		if err := cp.DB.Close(); err != nil {
			ds.DB.Close()
			return res, err
		}
		dsns = append(dsns, cdsn)
	}
	if err := ds.DB.Close(); err != nil {
		return res, fmt.Errorf("close the database: %w", err)
	}
	bodies, err := putBodies(zone, DetailRules)
	if err != nil {
		return res, err
	}
	res.Engines = make([]EnginePut, len(engines))
	servers := make([]*putServer, len(engines))
	defer func() {
		for _, s := range servers {
			if s != nil {
				s.close()
			}
		}
	}()
	for i, e := range engines {
		res.Engines[i].Engine = e.Name
		res.Engines[i].Load.Name = fmt.Sprintf("PUT %d rules, %s, nftables, until in the kernel", DetailRules, e.Name)
		res.Engines[i].Load.Bytes = len(bodies[0])
		s := &putServer{e: &res.Engines[i]}
		servers[i] = s
		if s.ns, err = NewNS("put"); err != nil {
			return res, err
		}
		if s.proc, _, err = startServe(bin, dsns[i], "nftables", s.ns); err != nil {
			return res, fmt.Errorf("%s: %w", e.Name, err)
		}
		if s.be, err = enforcer.NewNFTables(enforcer.WithNetNS(s.ns.FD())); err != nil {
			return res, fmt.Errorf("read the server's namespace: %w", err)
		}
		s.api = putAPI{
			client: s.proc.client(workers + 1), base: "http://" + s.proc.addr + "/instance/v1/zones/" + zone + "/security_groups",
			secret: secret, timeout: stateTimeout,
		}
	}

	// One at a time, on a group no worker writes; the first PUT on each
	// (from the populated rules to the benchmark's) is a warm-up.
	solo := groups[workers]
	for i := -1; i < n; i++ {
		for _, k := range Order(i+1, len(servers)) {
			s := servers[k]
			t0 := time.Now()
			ids, err := s.api.put(solo, bodies[(i+2)%2], DetailRules)
			if err != nil {
				return res, fmt.Errorf("%s: %w", s.e.Engine, err)
			}
			answer := time.Since(t0)
			if err := s.api.waitAvailable(solo); err != nil {
				return res, fmt.Errorf("%s: %w", s.e.Engine, err)
			}
			toKernel := time.Since(t0)
			if err := checkKernel(ctx, s.be, solo, ids); err != nil {
				return res, fmt.Errorf("%s: %w", s.e.Engine, err)
			}
			if i >= 0 {
				s.e.Answer = append(s.e.Answer, answer)
				s.e.ToKernel = append(s.e.ToKernel, toKernel)
			}
		}
	}

	// Under load: each worker its own group, the two bodies in turn.
	for round := -1; round < runs; round++ {
		dd := d
		if round < 0 {
			dd = d / 4 // warm-up: not recorded
		}
		for _, k := range Order(round+1, len(servers)) {
			if err := putLoad(ctx, servers[k], groups[:workers], bodies, dd, round >= 0); err != nil {
				return res, fmt.Errorf("%s: %w", servers[k].e.Load.Name, err)
			}
		}
	}
	return res, nil
}

// putLoad runs one round of d on s: a worker per group PUTs the two bodies
// in turn, then the round waits until every group reads "available", and
// checks each group's chains in the kernel against its last answer. It
// records the round in s.e when record is set.
func putLoad(ctx context.Context, s *putServer, groups []string, bodies [2][]byte, d time.Duration, record bool) error {
	workers := len(groups)
	last := make([][]byte, workers) // each worker's last answer
	t0 := time.Now()
	lat, err := loadGen(s.api.client, workers, d, func(w, i int) (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPut, s.api.base+"/"+groups[w]+"/rules", bytes.NewReader(bodies[i%2]))
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-Auth-Token", s.api.secret)
		req.Header.Set("Content-Type", "application/json")
		return req, nil
	}, func(w, status int, body []byte) error {
		if err := putCheck(DetailRules)(status, body); err != nil {
			return err
		}
		last[w] = append(last[w][:0], body...)
		return nil
	})
	if err != nil {
		return err
	}
	end := time.Now()
	for _, g := range groups {
		if err := s.api.waitAvailable(g); err != nil {
			return err
		}
	}
	done := time.Now()
	for w, g := range groups {
		if last[w] == nil {
			return fmt.Errorf("worker %d made no PUT", w)
		}
		ids, err := ruleIDs(last[w])
		if err != nil {
			return err
		}
		if err := checkKernel(ctx, s.be, g, ids); err != nil {
			return err
		}
	}
	if record {
		s.e.Load.RPS = append(s.e.Load.RPS, float64(len(lat))/done.Sub(t0).Seconds())
		s.e.Load.P50 = append(s.e.Load.P50, lat.Percentile(50))
		s.e.Load.P99 = append(s.e.Load.P99, lat.Percentile(99))
		s.e.Settle = append(s.e.Settle, done.Sub(end))
	}
	return nil
}
