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
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

// WebEnv is the real server (store, reconciler with the preview backend,
// web.Server) over loopback HTTP, filled with a dataset.
type WebEnv struct {
	DS     *Dataset
	Rec    *enforcer.Reconciler
	Srv    *web.Server
	TS     *httptest.Server
	Detail store.Group // a group with 100 rules
	cancel context.CancelFunc
	done   chan struct{}
}

// NewWebEnv fills a store in dir with groups groups of rules rules each
// (and the first group with 100), and serves it. Logs are written as JSON
// to nowhere: formatted, as in production, but not kept.
func NewWebEnv(ctx context.Context, dir string, groups, rules int) (*WebEnv, error) {
	ds, err := Populate(ctx, dir, Scale{Groups: groups, Rules: rules})
	if err != nil {
		return nil, err
	}
	env := &WebEnv{DS: ds, done: make(chan struct{})}
	if _, err := ds.DB.SetRules(ctx, ds.Org.ID, ds.Zone, ds.Groups[0].ID, RuleInputs(0, 100)); err != nil {
		ds.DB.Close()
		return nil, err
	}
	if env.Detail, err = ds.DB.Group(ctx, ds.Org.ID, ds.Zone, ds.Groups[0].ID); err != nil {
		ds.DB.Close()
		return nil, err
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	env.Rec = enforcer.NewReconciler(ds.DB, enforcer.NewPreview("benchmark"), logger)
	rctx, cancel := context.WithCancel(context.Background())
	env.cancel = cancel
	go func() { env.Rec.Run(rctx); close(env.done) }()
	<-env.Rec.Ready()
	if env.Srv, err = web.New(web.Config{Store: ds.DB, Enforcer: env.Rec, Logger: logger, Version: "bench"}); err != nil {
		env.Close()
		return nil, err
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
	Name   string
	Bytes  int       // response body size
	RPS    []float64 // per run
	P50    Sample    // per run
	P99    Sample    // per run
	Errors int
}

// Rate returns the median requests per second.
func (r LoadResult) Rate() float64 { return MedianFloat(r.RPS) }

func (r *LoadResult) add(n int, lat Sample, d time.Duration, errs int) {
	r.RPS = append(r.RPS, float64(n)/d.Seconds())
	r.P50 = append(r.P50, lat.Percentile(50))
	r.P99 = append(r.P99, lat.Percentile(99))
	r.Errors += errs
}

// loadGen sends requests from workers goroutines for d; mk builds the i-th
// request of worker w. It returns the requests answered with want, their
// latencies, and the others.
func loadGen(client *http.Client, workers int, d time.Duration, want int, mk func(w, i int) *http.Request) (int, Sample, int) {
	var mu sync.Mutex
	var all Sample
	errs := 0
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat Sample
			bad := 0
			for i := 0; time.Now().Before(deadline); i++ {
				req := mk(w, i)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					bad++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					bad++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	return len(all), all, errs
}

func newClient(workers int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}}
}

// APIResults are the API figures.
type APIResults struct {
	Workers  int
	Duration time.Duration
	Get      LoadResult // GET one group
	GetBare  LoadResult // bare Echo handler, same body
	List     LoadResult // GET 100 groups
	ListBare LoadResult
	Put      LoadResult // PUT 100 rules, until the reconciler applied the last
	PutApply Sample     // per run: from the end of the run until applied
}

// MeasureAPI loads the real API and a bare Echo handler answering the same
// bytes, in alternation, runs rounds of d each with workers connections.
func MeasureAPI(ctx context.Context, env *WebEnv, runs, workers int, d time.Duration) (APIResults, error) {
	res := APIResults{Workers: workers, Duration: d}
	base := env.TS.URL + "/instance/v1/zones/" + env.DS.Zone + "/security_groups"
	getURL := base + "/" + env.DS.Groups[1].ID
	listURL := base + "?per_page=100&page=2"
	client := newClient(workers)
	get := func(url string) (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-Auth-Token", env.DS.Secret)
		return req, nil
	}
	fetch := func(url string) ([]byte, error) {
		req, err := get(url)
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
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
		}
		return b, nil
	}
	oneBody, err := fetch(getURL)
	if err != nil {
		return res, err
	}
	listBody, err := fetch(listURL)
	if err != nil {
		return res, err
	}
	var list struct {
		Groups []json.RawMessage `json:"security_groups"`
	}
	if err := json.Unmarshal(listBody, &list); err != nil || len(list.Groups) != 100 {
		return res, fmt.Errorf("list answered %d groups, want 100 (%v)", len(list.Groups), err)
	}
	res.Get.Name, res.GetBare.Name = "GET one group", "bare Echo, same body"
	res.List.Name, res.ListBare.Name = "GET 100 groups", "bare Echo, same body"
	res.Get.Bytes, res.GetBare.Bytes, res.List.Bytes, res.ListBare.Bytes = len(oneBody), len(oneBody), len(listBody), len(listBody)

	// The bare handler: Echo, a route of the same shape, a fixed answer.
	bare := echo.New()
	bare.HideBanner, bare.HidePort = true, true
	bare.GET("/instance/v1/zones/:zone/security_groups/:id", func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, oneBody)
	})
	bare.GET("/instance/v1/zones/:zone/security_groups", func(c echo.Context) error {
		c.Response().Header().Set("X-Total-Count", "1000")
		return c.JSONBlob(http.StatusOK, listBody)
	})
	bts := httptest.NewServer(bare)
	defer bts.Close()
	bareBase := bts.URL + "/instance/v1/zones/" + env.DS.Zone + "/security_groups"

	// PUT: each worker its own group, two rule sets in turn so that every
	// request changes the group.
	var bodies [2][]byte
	for v := range bodies {
		rules := make([]map[string]any, 100)
		for i, in := range RuleInputs(3, 100) {
			port := 1 + i + 100*v
			rules[i] = map[string]any{
				"id": nil, "action": in.Action, "protocol": "TCP", "direction": in.Direction,
				"ip_range": in.IPRange, "dest_ip_range": nil, "dest_port_from": port, "dest_port_to": nil,
				"position": 0, "editable": true, "zone": env.DS.Zone,
			}
		}
		if bodies[v], err = json.Marshal(map[string]any{"rules": rules}); err != nil {
			return res, err
		}
	}
	res.Put.Name, res.Put.Bytes = "PUT 100 rules, until applied", len(bodies[0])

	mkGet := func(url string) func(int, int) *http.Request {
		return func(int, int) *http.Request {
			req, _ := get(url)
			return req
		}
	}
	for round := -1; round < runs; round++ {
		dd := d
		if round < 0 {
			dd = d / 4
		}
		for _, c := range []struct {
			r   *LoadResult
			url string
		}{{&res.Get, getURL}, {&res.GetBare, bareBase + "/" + env.DS.Groups[1].ID}, {&res.List, listURL}, {&res.ListBare, bareBase + "?per_page=100&page=2"}} {
			n, lat, errs := loadGen(client, workers, dd, http.StatusOK, mkGet(c.url))
			if round >= 0 {
				c.r.add(n, lat, dd, errs)
			}
		}
		t0 := time.Now()
		n, lat, errs := loadGen(client, workers, dd, http.StatusOK, func(w, i int) *http.Request {
			req, _ := http.NewRequest(http.MethodPut, base+"/"+env.DS.Groups[2+w].ID+"/rules", bytes.NewReader(bodies[i%2]))
			req.Header.Set("X-Auth-Token", env.DS.Secret)
			req.Header.Set("Content-Type", "application/json")
			return req
		})
		end := time.Now()
		gen, err := env.DS.DB.Generation(ctx)
		if err != nil {
			return res, err
		}
		for env.Rec.Stats().AppliedGeneration < gen {
			if time.Since(end) > 30*time.Second {
				return res, fmt.Errorf("reconciler did not reach generation %d", gen)
			}
			time.Sleep(100 * time.Microsecond)
		}
		if round >= 0 {
			res.Put.add(n, lat, time.Since(t0), errs)
			res.PutApply = append(res.PutApply, time.Since(end))
		}
	}
	return res, nil
}
