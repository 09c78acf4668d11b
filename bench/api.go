package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

// WebEnv is the real server (store, reconciler with the preview backend,
// web.Server) over loopback HTTP, filled with a dataset.
type WebEnv struct {
	Engine string // the store's engine
	Scale  Scale  // groups of rules each; no server
	DS     *Dataset
	Rec    *enforcer.Reconciler
	Srv    *web.Server
	TS     *httptest.Server
	Detail store.Group // a group with DetailRules rules
	cancel context.CancelFunc
	done   chan struct{}
}

// DetailRules is the number of rules of WebEnv.Detail, and of every PUT.
const DetailRules = 100

// NewWebEnv fills a SQLite store in dir with groups groups of rules rules
// each (and the first group with DetailRules), and serves it. Logs are
// written as JSON to nowhere: formatted, as in production, but not kept.
func NewWebEnv(ctx context.Context, dir string, groups, rules int) (*WebEnv, error) {
	sc := Scale{Groups: groups, Rules: rules}
	ds, err := Populate(ctx, filepath.Join(dir, "rampart.db"), sc)
	if err != nil {
		return nil, err
	}
	if _, err := ds.DB.SetRules(ctx, ds.Org.ID, ds.Zone, ds.Groups[0].ID, RuleInputs(0, DetailRules)); err != nil {
		ds.DB.Close()
		return nil, fmt.Errorf("set the detail group's rules: %w", err)
	}
	return serveWeb(ds, "SQLite", sc)
}

// CopyTo serves the same data (rows, IDs and token) from a new database
// of engine e, copied from env's.
func (env *WebEnv) CopyTo(ctx context.Context, e Engine) (*WebEnv, error) {
	ds, _, err := env.DS.CopyTo(ctx, e)
	if err != nil {
		return nil, err
	}
	return serveWeb(ds, e.Name, env.Scale)
}

// serveWeb serves ds with a reconciler on the preview backend; it closes
// ds's store when it fails.
func serveWeb(ds *Dataset, engine string, sc Scale) (*WebEnv, error) {
	ctx := context.Background()
	env := &WebEnv{Engine: engine, Scale: sc, DS: ds, done: make(chan struct{})}
	var err error
	if env.Detail, err = ds.DB.Group(ctx, ds.Org.ID, ds.Zone, ds.Groups[0].ID); err != nil {
		ds.DB.Close()
		return nil, fmt.Errorf("read the detail group: %w", err)
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	env.Rec = enforcer.NewReconciler(ds.DB, enforcer.NewPreview("benchmark"), logger)
	rctx, cancel := context.WithCancel(ctx)
	env.cancel = cancel
	go func() { env.Rec.Run(rctx); close(env.done) }()
	<-env.Rec.Ready()
	if env.Srv, err = web.New(web.Config{Store: ds.DB, Enforcer: env.Rec, Logger: logger, Version: "bench"}); err != nil {
		env.Close()
		return nil, fmt.Errorf("web server: %w", err)
	}
	env.TS = httptest.NewServer(env.Srv)
	return env, nil
}

// Close stops the server and the reconciler and closes the store.
func (env *WebEnv) Close() {
	if env.TS != nil {
		env.TS.Close()
	}
	env.cancel()
	<-env.done
	env.DS.DB.Close()
}

// LoadResult holds the runs of one load test.
type LoadResult struct {
	Name  string
	Bytes int       // response body size
	RPS   []float64 // per run
	P50   Sample    // per run
	P99   Sample    // per run
}

// Rate returns the median requests per second.
func (r LoadResult) Rate() float64 { return MedianFloat(r.RPS) }

func (r *LoadResult) add(lat Sample, d time.Duration) {
	r.RPS = append(r.RPS, float64(len(lat))/d.Seconds())
	r.P50 = append(r.P50, lat.Percentile(50))
	r.P99 = append(r.P99, lat.Percentile(99))
}

// loadGen sends requests from workers goroutines for d: mk builds the i-th
// request of worker w, and check inspects every answer (w is the worker)
// once its latency is taken. It returns the latencies, or the first error:
// a request that failed or an answer that check refused, after which every
// worker stops. A load test never reports a figure made of failures.
func loadGen(client *http.Client, workers int, d time.Duration, mk func(w, i int) (*http.Request, error), check func(w, status int, body []byte) error) (Sample, error) {
	var (
		mu       sync.Mutex
		all      Sample
		firstErr error
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		stop.Store(true)
	}
	deadline := time.Now().Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat Sample
			var body bytes.Buffer
			for i := 0; !stop.Load() && time.Now().Before(deadline); i++ {
				req, err := mk(w, i)
				if err != nil {
					fail(err)
					return
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					fail(err)
					return
				}
				body.Reset()
				_, err = body.ReadFrom(resp.Body)
				resp.Body.Close()
				d := time.Since(t0)
				if err != nil {
					fail(fmt.Errorf("%s %s: read the answer: %w", req.Method, req.URL.Path, err))
					return
				}
				if err := check(w, resp.StatusCode, body.Bytes()); err != nil {
					fail(fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err))
					return
				}
				lat = append(lat, d)
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("no request answered in %s", d)
	}
	return all, nil
}

// anyWorker returns c as a check of loadGen, the same for every worker.
func anyWorker(c Check) func(int, int, []byte) error {
	return func(_, status int, body []byte) error { return c(status, body) }
}

func newClient(workers int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}}
}

// APIResults are the API figures: the real server on each engine, and a
// bare Echo handler answering the same bytes, measured in turns.
type APIResults struct {
	Scale    Scale // of the store: groups of rules each
	Workers  int
	Duration time.Duration
	PerPage  int // groups of the list request
	PutRules int // rules of each PUT
	Engines  []EngineAPI
	GetBare  LoadResult // bare Echo handler, the body of GET one group
	ListBare LoadResult // the body of GET PerPage groups
}

// EngineAPI are the real server's figures on one engine.
type EngineAPI struct {
	Engine   string
	Get      LoadResult // GET one group
	List     LoadResult // GET PerPage groups
	Put      LoadResult // PUT PutRules rules with the preview backend, until the reconciler applied the last
	PutApply Sample     // per run: from the end of the run until applied
}

// Checks of the API's answers. Echo writes the keys of a map in order, and
// a group's ID first: every answer starts with its top-level key.
func groupCheck(id string) Check {
	return ExpectJSON(http.StatusOK, `{"security_group":{"id":"`+id+`"`, "", -1)
}

func listCheck(n int) Check {
	return ExpectJSON(http.StatusOK, `{"security_groups":[`, `"organization_default":`, n)
}

func putCheck(n int) Check {
	return ExpectJSON(http.StatusOK, `{"rules":[`, `"editable":true`, n)
}

// putBodies returns two bodies of PUT …/rules with n TCP rules each, which
// differ in every port, so that every PUT changes the group.
func putBodies(zone string, n int) ([2][]byte, error) {
	var bodies [2][]byte
	for v := range bodies {
		rules := make([]map[string]any, n)
		for i, in := range RuleInputs(3, n) {
			rules[i] = map[string]any{
				"id": nil, "action": in.Action, "protocol": "TCP", "direction": in.Direction,
				"ip_range": in.IPRange, "dest_ip_range": nil, "dest_port_from": 1 + i + n*v, "dest_port_to": nil,
				"position": 0, "editable": true, "zone": zone,
			}
		}
		var err error
		if bodies[v], err = json.Marshal(map[string]any{"rules": rules}); err != nil {
			return bodies, fmt.Errorf("encode a PUT body: %w", err)
		}
	}
	return bodies, nil
}

// MeasureAPI loads the real API on each of envs (the same data on each
// engine: NewWebEnv, then CopyTo) and a bare Echo handler answering the
// bytes of the first, taking turns in alternating order, runs rounds of d
// each with workers connections. Every answer is checked; the first wrong
// one ends the benchmark with an error.
func MeasureAPI(ctx context.Context, envs []*WebEnv, runs, workers int, d time.Duration) (APIResults, error) {
	const perPage = 100
	if len(envs) == 0 {
		return APIResults{}, fmt.Errorf("API benchmark: no server")
	}
	first := envs[0]
	res := APIResults{Scale: first.Scale, Workers: workers, Duration: d, PerPage: perPage, PutRules: DetailRules}
	if len(first.DS.Groups) < 2+workers || len(first.DS.Groups) < 2*perPage {
		return res, fmt.Errorf("the store has %d groups, the API benchmark needs %d", len(first.DS.Groups), max(2+workers, 2*perPage))
	}
	gid := first.DS.Groups[1].ID
	getPath := "/" + gid
	listQuery := fmt.Sprintf("?per_page=%d&page=2", perPage)
	client := newClient(workers * (len(envs) + 1))
	get := func(url, secret string) (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-Auth-Token", secret)
		return req, nil
	}
	fetch := func(url, secret string, check Check) ([]byte, error) {
		req, err := get(url, secret)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", url, err)
		}
		if err := check(resp.StatusCode, b); err != nil {
			return nil, fmt.Errorf("GET %s: %w", url, err)
		}
		return b, nil
	}
	base := func(env *WebEnv) string { return env.TS.URL + "/instance/v1/zones/" + env.DS.Zone + "/security_groups" }
	var oneBody, listBody []byte
	for i, env := range envs {
		if env.DS.Groups[1].ID != gid || env.DS.Zone != first.DS.Zone {
			return res, fmt.Errorf("%s serves other data than %s: copy it with CopyTo", env.Engine, first.Engine)
		}
		one, err := fetch(base(env)+getPath, env.DS.Secret, groupCheck(gid))
		if err != nil {
			return res, fmt.Errorf("%s: %w", env.Engine, err)
		}
		list, err := fetch(base(env)+listQuery, env.DS.Secret, listCheck(perPage))
		if err != nil {
			return res, fmt.Errorf("%s: %w", env.Engine, err)
		}
		if i == 0 {
			oneBody, listBody = one, list
		}
		e := EngineAPI{Engine: env.Engine}
		e.Get.Name, e.List.Name = "GET one group, "+env.Engine, fmt.Sprintf("GET %d groups, %s", perPage, env.Engine)
		e.Get.Bytes, e.List.Bytes = len(one), len(list)
		e.Put.Name = fmt.Sprintf("PUT %d rules, %s, preview backend (no kernel), until applied", DetailRules, env.Engine)
		res.Engines = append(res.Engines, e)
	}
	res.GetBare.Name, res.ListBare.Name = "bare Echo, same body", "bare Echo, same body"
	res.GetBare.Bytes, res.ListBare.Bytes = len(oneBody), len(listBody)

	// The bare handler: Echo, a route of the same shape, a fixed answer.
	bare := echo.New()
	bare.HideBanner, bare.HidePort = true, true
	bare.GET("/instance/v1/zones/:zone/security_groups/:id", func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, oneBody)
	})
	bare.GET("/instance/v1/zones/:zone/security_groups", func(c echo.Context) error {
		c.Response().Header().Set("X-Total-Count", strconv.Itoa(len(first.DS.Groups)))
		return c.JSONBlob(http.StatusOK, listBody)
	})
	bts := httptest.NewServer(bare)
	defer bts.Close()
	bareBase := bts.URL + "/instance/v1/zones/" + first.DS.Zone + "/security_groups"

	// PUT: each worker its own group, two rule sets in turn so that every
	// request changes the group.
	bodies, err := putBodies(first.DS.Zone, DetailRules)
	if err != nil {
		return res, err
	}
	for i := range res.Engines {
		res.Engines[i].Put.Bytes = len(bodies[0])
	}

	mkGet := func(url, secret string) func(int, int) (*http.Request, error) {
		return func(int, int) (*http.Request, error) { return get(url, secret) }
	}
	type load struct {
		r      *LoadResult
		url    string
		secret string
		check  Check
	}
	// Each comparison: the real server on every engine, then the bare
	// handler; they take turns in alternating order.
	var gets, lists []load
	for i, env := range envs {
		gets = append(gets, load{&res.Engines[i].Get, base(env) + getPath, env.DS.Secret, groupCheck(gid)})
		lists = append(lists, load{&res.Engines[i].List, base(env) + listQuery, env.DS.Secret, listCheck(perPage)})
	}
	gets = append(gets, load{&res.GetBare, bareBase + getPath, first.DS.Secret, groupCheck(gid)})
	lists = append(lists, load{&res.ListBare, bareBase + listQuery, first.DS.Secret, listCheck(perPage)})
	for round := -1; round < runs; round++ {
		dd := d
		if round < 0 {
			dd = d / 4 // warm-up: not recorded
		}
		for _, loads := range [][]load{gets, lists} {
			for _, i := range Order(round+1, len(loads)) {
				c := loads[i]
				lat, err := loadGen(client, workers, dd, mkGet(c.url, c.secret), anyWorker(c.check))
				if err != nil {
					return res, fmt.Errorf("%s: %w", c.r.Name, err)
				}
				if round >= 0 {
					c.r.add(lat, dd)
				}
			}
		}
		for _, i := range Order(round+1, len(envs)) {
			if err := measurePutPreview(ctx, envs[i], &res.Engines[i], client, bodies, workers, dd, round >= 0); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// measurePutPreview runs one round of PUTs on env: each worker replaces
// the rules of a group of its own for d, and the round ends when env's
// reconciler has compiled the last change. It records the round in e
// when record is set.
func measurePutPreview(ctx context.Context, env *WebEnv, e *EngineAPI, client *http.Client, bodies [2][]byte, workers int, d time.Duration, record bool) error {
	base := env.TS.URL + "/instance/v1/zones/" + env.DS.Zone + "/security_groups"
	t0 := time.Now()
	lat, err := loadGen(client, workers, d, func(w, i int) (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPut, base+"/"+env.DS.Groups[2+w].ID+"/rules", bytes.NewReader(bodies[i%2]))
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-Auth-Token", env.DS.Secret)
		req.Header.Set("Content-Type", "application/json")
		return req, nil
	}, anyWorker(putCheck(DetailRules)))
	if err != nil {
		return fmt.Errorf("%s: %w", e.Put.Name, err)
	}
	end := time.Now()
	gen, err := env.DS.DB.Generation(ctx)
	if err != nil {
		return fmt.Errorf("%s: read the store's generation: %w", env.Engine, err)
	}
	for env.Rec.Stats().AppliedGeneration < gen {
		if time.Since(end) > 30*time.Second {
			return fmt.Errorf("%s: reconciler did not reach generation %d in 30 s (stats %+v)", env.Engine, gen, env.Rec.Stats())
		}
		time.Sleep(100 * time.Microsecond)
	}
	if record {
		elapsed := time.Since(t0)
		e.Put.RPS = append(e.Put.RPS, float64(len(lat))/elapsed.Seconds())
		e.Put.P50 = append(e.Put.P50, lat.Percentile(50))
		e.Put.P99 = append(e.Put.P99, lat.Percentile(99))
		e.PutApply = append(e.PutApply, time.Since(end))
	}
	return nil
}
