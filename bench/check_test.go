package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/internal/pgcluster"
)

// requireRoot skips a test that needs root and the network tools, or fails
// it when RAMPART_REQUIRE_ALL=1, so that a kernel test never silently
// vanishes.
func requireRoot(t *testing.T, tools ...string) {
	t.Helper()
	var why string
	if os.Geteuid() != 0 {
		why = "needs root (network namespaces, nftables)"
	}
	for _, bin := range append([]string{"ip", "nft"}, tools...) {
		if _, err := exec.LookPath(bin); err != nil && why == "" {
			why = "needs the " + bin + " binary"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("RAMPART_REQUIRE_ALL") == "1" {
		t.Fatalf("RAMPART_REQUIRE_ALL=1: %s", why)
	}
	t.Skip(why)
}

// answering returns a server that answers every request with status and
// body, and counts the requests.
func answering(t *testing.T, status int, body string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(ts.Close)
	return ts, &n
}

// TestBenchmarkWrongAnswersAreErrors is finding 16 of the benchmark review:
// a benchmark whose timed or setup requests are answered wrongly (a 500, a
// body without the expected key, a group that never reaches the kernel)
// returns an error, never a figure.
func TestBenchmarkWrongAnswersAreErrors(t *testing.T) {
	const oneGroup = `{"security_group":{"id":"g1","state":"available"}}`
	get := func(url string) func(int, int) (*http.Request, error) {
		return func(int, int) (*http.Request, error) { return http.NewRequest(http.MethodGet, url, nil) }
	}

	t.Run("load/500", func(t *testing.T) {
		ts, _ := answering(t, http.StatusInternalServerError, `{"message":"internal error"}`)
		lat, err := loadGen(ts.Client(), 2, 100*time.Millisecond, get(ts.URL), anyWorker(groupCheck("g1")))
		if err == nil || lat != nil {
			t.Fatalf("loadGen against a 500: %d latencies, err %v; want an error and no figure", len(lat), err)
		}
		if !strings.Contains(err.Error(), "status 500") {
			t.Errorf("error %q does not name the status", err)
		}
	})
	t.Run("load/wrong body", func(t *testing.T) {
		ts, _ := answering(t, http.StatusOK, `{"security_group":{"id":"another"}}`)
		if _, err := loadGen(ts.Client(), 2, 100*time.Millisecond, get(ts.URL), anyWorker(groupCheck("g1"))); err == nil {
			t.Fatal("loadGen accepted the answer of another group")
		}
	})
	t.Run("load/right answers", func(t *testing.T) {
		ts, n := answering(t, http.StatusOK, oneGroup)
		lat, err := loadGen(ts.Client(), 2, 100*time.Millisecond, get(ts.URL), anyWorker(groupCheck("g1")))
		if err != nil {
			t.Fatal(err)
		}
		if len(lat) == 0 || int64(len(lat)) > n.Load() {
			t.Fatalf("%d latencies for %d requests", len(lat), n.Load())
		}
	})
	t.Run("list/count", func(t *testing.T) {
		ts, _ := answering(t, http.StatusOK, `{"security_groups":[{"id":"a","organization_default":false}],"total_count":1}`)
		if _, err := loadGen(ts.Client(), 1, 50*time.Millisecond, get(ts.URL), anyWorker(listCheck(2))); err == nil {
			t.Fatal("a list of one group passed as a list of two")
		}
	})

	// The RSS figure's setup: reading every group through the API.
	t.Run("rss reads/500", func(t *testing.T) {
		ts, _ := answering(t, http.StatusInternalServerError, `{}`)
		if err := readAllGroups(ts.Client(), ts.URL, "fr-par-1", "secret", 3, 2); err == nil {
			t.Fatal("readAllGroups accepted a 500")
		}
	})
	t.Run("rss reads/short page", func(t *testing.T) {
		ts, n := answering(t, http.StatusOK, `{"security_groups":[{"organization_default":false}],"total_count":3}`)
		if err := readAllGroups(ts.Client(), ts.URL, "fr-par-1", "secret", 3, 2); err == nil {
			t.Fatal("readAllGroups accepted a page of one group where two were due")
		}
		if n.Load() != 1 {
			t.Errorf("%d requests after a wrong first page, want 1", n.Load())
		}
	})

	// The PUT with the kernel: the answer, then the group's state.
	t.Run("put/500", func(t *testing.T) {
		ts, _ := answering(t, http.StatusInternalServerError, `{}`)
		api := putAPI{client: ts.Client(), base: ts.URL, secret: "s", timeout: time.Second}
		if _, err := api.put("g1", []byte(`{"rules":[]}`), 2); err == nil {
			t.Fatal("put accepted a 500")
		}
	})
	t.Run("put/answer", func(t *testing.T) {
		ts, _ := answering(t, http.StatusOK, `{"rules":[{"id":"r1","editable":true},{"id":"r2","editable":true}]}`)
		api := putAPI{client: ts.Client(), base: ts.URL, secret: "s", timeout: time.Second}
		ids, err := api.put("g1", []byte(`{"rules":[]}`), 2)
		if err != nil || !slices.Equal(ids, []string{"r1", "r2"}) {
			t.Fatalf("put: %v, %v; want [r1 r2]", ids, err)
		}
		if _, err := api.put("g1", []byte(`{"rules":[]}`), 3); err == nil {
			t.Fatal("put accepted an answer of two rules for three")
		}
	})
	t.Run("put/never available", func(t *testing.T) {
		ts, _ := answering(t, http.StatusOK, `{"security_group":{"id":"g1","state":"syncing"}}`)
		api := putAPI{client: ts.Client(), base: ts.URL, secret: "s", timeout: 50 * time.Millisecond}
		if err := api.waitAvailable("g1"); err == nil {
			t.Fatal("waitAvailable returned for a group that stays syncing")
		}
	})
	t.Run("put/syncing_error", func(t *testing.T) {
		ts, n := answering(t, http.StatusOK, `{"security_group":{"id":"g1","state":"syncing_error"}}`)
		api := putAPI{client: ts.Client(), base: ts.URL, secret: "s", timeout: 10 * time.Second}
		if err := api.waitAvailable("g1"); err == nil || n.Load() != 1 {
			t.Fatalf("waitAvailable on syncing_error: %v after %d polls; want an error at once", err, n.Load())
		}
	})
	t.Run("put/available", func(t *testing.T) {
		ts, _ := answering(t, http.StatusOK, oneGroup)
		api := putAPI{client: ts.Client(), base: ts.URL, secret: "s", timeout: time.Second}
		if err := api.waitAvailable("g1"); err != nil {
			t.Fatal(err)
		}
	})

	// The fleet: the console's traffic and the rule created.
	t.Run("fleet/metrics without agents", func(t *testing.T) {
		if _, err := parseTraffic(strings.NewReader("rampart_store_generation 12\nrampart_agent_streams 3\n")); err == nil {
			t.Fatal("parseTraffic read the traffic of a page without it")
		}
		tr, err := parseTraffic(strings.NewReader("# HELP x\nrampart_agent_streams 3\nrampart_agent_frames_total 17\n" +
			"rampart_agent_frame_bytes_total 4242\nrampart_agent_reports_total 5\nrampart_agent_report_bytes_total 999\n"))
		if err != nil || tr.Streams != 3 || tr.Frames != 17 || tr.FrameBytes != 4242 || tr.Reports != 5 || tr.ReportBytes != 999 {
			t.Fatalf("parseTraffic: %+v, %v", tr, err)
		}
	})
	t.Run("fleet/post 500", func(t *testing.T) {
		ts, _ := answering(t, http.StatusInternalServerError, `{"message":"internal error"}`)
		api := putAPI{client: ts.Client(), base: ts.URL, secret: "s", timeout: time.Second}
		if _, err := api.post("g1", `{}`); err == nil {
			t.Fatal("post accepted a 500")
		}
	})
	t.Run("fleet/post without an ID", func(t *testing.T) {
		ts, _ := answering(t, http.StatusOK, `{"rule":{"position":1}}`)
		api := putAPI{client: ts.Client(), base: ts.URL, secret: "s", timeout: time.Second}
		if _, err := api.post("g1", `{}`); err == nil {
			t.Fatal("post accepted an answer without the rule's ID")
		}
	})

	// The datapath: traffic that did not go through the accepting rule.
	t.Run("datapath", func(t *testing.T) {
		nft := DatapathConfig{Name: "nft", Servers: 1, Kind: "nftables"}
		for _, c := range []struct {
			cfg           DatapathConfig
			conns, failed int
			before, after uint64
			ok            bool
			why           string
		}{
			{nft, 100, 0, 7, 107, true, "every connection counted"},
			{nft, 100, 0, 7, 300, true, "retransmitted SYNs counted too"},
			{nft, 100, 0, 7, 106, false, "one connection not counted"},
			{nft, 100, 0, 0, 0, false, "counter never moved"},
			{nft, 100, 0, 9, 3, false, "counter reset during the run"},
			{nft, 100, 1, 0, 200, false, "a failed connection"},
			{nft, 0, 0, 0, 0, false, "no connection"},
			{DatapathConfig{Name: "none", Servers: 1, Kind: "none"}, 100, 0, 0, 0, true, "no ruleset, nothing to count"},
		} {
			err := checkDatapathRun(c.cfg, c.conns, c.failed, c.before, c.after)
			if (err == nil) != c.ok {
				t.Errorf("%s: err %v, want ok=%v", c.why, err, c.ok)
			}
		}
	})
	t.Run("datapath/iptables-save", func(t *testing.T) {
		dump := "*filter\n:FORWARD ACCEPT [0:0]\n[12:720] -A g0_in -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n" +
			"[3:180] -A g0_in -s 10.9.0.0/24 -p tcp -m tcp --dport 1000 -j ACCEPT\n" +
			"[4242:254520] -A g0_in -s 10.250.0.0/24 -p tcp -m tcp --dport 8080 -j ACCEPT\nCOMMIT\n"
		n, err := iptAcceptCount([]byte(dump))
		if err != nil || n != 4242 {
			t.Fatalf("iptAcceptCount: %d, %v; want 4242", n, err)
		}
		if _, err := iptAcceptCount([]byte("*filter\nCOMMIT\n")); err == nil {
			t.Fatal("iptAcceptCount found a counter in a dump without the accepting rule")
		}
	})

	// The console: a page answered wrongly through the real server.
	t.Run("console", func(t *testing.T) {
		env, err := NewWebEnv(context.Background(), t.TempDir(), 3, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer env.Close()
		real := env.TS.Config.Handler
		env.TS.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/security-groups" {
				http.Error(w, "broken", http.StatusInternalServerError)
				return
			}
			real.ServeHTTP(w, r)
		})
		res, err := MeasureConsole(context.Background(), env, 2)
		if err == nil {
			t.Fatalf("MeasureConsole returned figures (%v) for a list page answering 500", res.List)
		}
		if !strings.Contains(err.Error(), "500") {
			t.Errorf("error %q does not name the status", err)
		}
	})
	t.Run("console/missing group", func(t *testing.T) {
		env, err := NewWebEnv(context.Background(), t.TempDir(), 3, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer env.Close()
		// The benchmark expects a group the page cannot show.
		env.DS.Groups = append(env.DS.Groups, env.DS.Groups[0])
		env.DS.Groups[len(env.DS.Groups)-1].ID = "00000000-0000-4000-8000-00000000dead"
		if _, err := MeasureConsole(context.Background(), env, 2); err == nil {
			t.Fatal("MeasureConsole accepted a list page without every group")
		}
	})
}

// TestBenchmarkComparedRunsAlternate is finding 16 of the benchmark review:
// compared configurations take turns in alternating order, so that none
// always runs first.
func TestBenchmarkComparedRunsAlternate(t *testing.T) {
	var seq []int
	first := map[int]int{}
	for r := 0; r < 4; r++ {
		o := Order(r, 3)
		seq = append(seq, o...)
		first[o[0]]++
		sorted := slices.Clone(o)
		slices.Sort(sorted)
		if !slices.Equal(sorted, []int{0, 1, 2}) {
			t.Fatalf("round %d: order %v is not a permutation", r, o)
		}
	}
	if want := []int{0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0}; !slices.Equal(seq, want) {
		t.Fatalf("orders %v, want %v", seq, want)
	}
	if first[0] != 2 || first[2] != 2 {
		t.Fatalf("first of the rounds: %v; want the two ends in turn", first)
	}
}

// TestBenchmarkChecksInKernel runs the enforcer, store and datapath
// benchmarks at a tiny scale: their kernel checks (the table read back,
// the rule created found in its chain, the accepting rule's counter) must
// pass on a correct run.
func TestBenchmarkChecksInKernel(t *testing.T) {
	requireRoot(t, "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save")
	ctx := context.Background()
	a, err := MeasureApply(ctx, Scale{Servers: 3, Groups: 4, Rules: 5}, 1, 3, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Full) != 1 || len(a.NFT) != 1 || len(a.IPT) != 1 || len(a.Incremental) != 3 || len(a.Burst) != 3 {
		t.Fatalf("apply: %d, %d, %d, %d, %d runs; want 1, 1, 1, 3, 3", len(a.Full), len(a.NFT), len(a.IPT), len(a.Incremental), len(a.Burst))
	}
	st, err := MeasureStoreApply(ctx, Scale{Servers: 3, Groups: 4, Rules: 5}, 2, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.ToKernel) != 2 {
		t.Fatalf("store to kernel: %d runs, want 2", len(st.ToKernel))
	}
	dp, err := MeasureDatapath(ctx, []DatapathConfig{
		{Name: "none", Servers: 1, Kind: "none"},
		{Name: "nftables", Servers: 1, Kind: "nftables"},
		{Name: "iptables", Servers: 1, Kind: "iptables"},
	}, 1, 2, 200*time.Millisecond, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range dp.Configs {
		if len(c.Conns) != 1 || c.Conns[0] == 0 {
			t.Fatalf("%s: connections %v", c.Config.Name, c.Conns)
		}
		if c.Config.Kind != "none" && c.Accepted[0] < uint64(c.Conns[0]) {
			t.Errorf("%s: accepting rule counted %d packets for %d connections", c.Config.Name, c.Accepted[0], c.Conns[0])
		}
	}
}

// rampartBinary returns RAMPART_BIN (make test builds it) or builds it.
func rampartBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("RAMPART_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	bin := filepath.Join(t.TempDir(), "rampart")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/rampart")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/rampart: %v\n%s", err, out)
	}
	return bin
}

// TestBenchmarkFleetInKernel runs the fleet benchmark at a tiny scale: a
// console process, two agents in this process and the binary's, each in a
// namespace; every change must reach every kernel, and the figures must
// be there.
func TestBenchmarkFleetInKernel(t *testing.T) {
	requireRoot(t)
	bin := rampartBinary(t)
	res, err := MeasureFleet(context.Background(), FleetConfig{Bin: bin, Agents: 3, SharedRules: 4, OwnRules: 2,
		Changes: 3, Idle: 300 * time.Millisecond, Settle: 100 * time.Millisecond}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.All) != 3 || len(res.PerAgent) != 9 || len(res.Binary) != 3 || res.Instant != 3 || len(res.ChangeCPU) != 3 {
		t.Fatalf("figures of %d, %d, %d, %d, %d; want 3, 9, 3, 3, 3", len(res.All), len(res.PerAgent), len(res.Binary), res.Instant, len(res.ChangeCPU))
	}
	for i, d := range res.All {
		if d <= 0 || d < res.Answer[i] {
			t.Errorf("change %d: every agent after %s, the answer after %s", i, d, res.Answer[i])
		}
	}
	if res.ConsoleRSS <= 0 || res.AgentRSS <= 0 || res.ConsoleHWM < res.ConsoleRSS || res.ViewBytes <= 0 {
		t.Errorf("memory and view: console %d kB (peak %d), agent %d kB, view %d B", res.ConsoleRSS, res.ConsoleHWM, res.AgentRSS, res.ViewBytes)
	}
	if res.Clean != len(res.FrameBytes) || res.Clean != len(res.WireBytes) {
		t.Errorf("%d clean changes, %d frame and %d wire figures", res.Clean, len(res.FrameBytes), len(res.WireBytes))
	}
	t.Logf("every agent: %v; bytes per agent: %v frames, %v wire; idle CPU %.3f", res.All, res.FrameBytes, res.WireBytes, res.IdleCPU)
}

// requirePostgres returns a throwaway PostgreSQL cluster, durable as the
// benchmarks run it, stopped when the test ends; without PostgreSQL it
// skips the test, or fails it when RAMPART_REQUIRE_ALL=1.
func requirePostgres(t *testing.T) *pgcluster.Cluster {
	t.Helper()
	c, err := pgcluster.Start(pgcluster.Options{Durable: true, MaxConnections: 100})
	if err != nil {
		if os.Getenv("RAMPART_REQUIRE_ALL") == "1" {
			t.Fatalf("RAMPART_REQUIRE_ALL=1: PostgreSQL is required: %v", err)
		}
		t.Skipf("no PostgreSQL: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// engines returns SQLite and PostgreSQL, as benchreport compares them.
func engines(t *testing.T) []Engine {
	t.Helper()
	pg := requirePostgres(t)
	v, err := pg.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return []Engine{SQLite(t.TempDir()), Postgres(pg, v)}
}

// TestBenchmarkEngines runs the API benchmark on both engines at a tiny
// scale: the copy serves the same bytes, and every figure is there.
func TestBenchmarkEngines(t *testing.T) {
	es := engines(t)
	ctx := context.Background()
	env, err := NewWebEnv(ctx, t.TempDir(), 200, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	pg, err := env.CopyTo(ctx, es[1])
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	res, err := MeasureAPI(ctx, []*WebEnv{env, pg}, 1, 2, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Engines) != 2 || res.Engines[1].Engine != "PostgreSQL" {
		t.Fatalf("engines %+v", res.Engines)
	}
	for _, e := range res.Engines {
		if len(e.Get.RPS) != 1 || len(e.List.RPS) != 1 || len(e.Put.RPS) != 1 || e.Get.Bytes != res.GetBare.Bytes || e.List.Bytes != res.ListBare.Bytes {
			t.Errorf("%s: %d, %d, %d runs; bodies %d and %d B, bare %d and %d B", e.Engine, len(e.Get.RPS), len(e.List.RPS), len(e.Put.RPS),
				e.Get.Bytes, e.List.Bytes, res.GetBare.Bytes, res.ListBare.Bytes)
		}
	}

	// Another store than the first's: the bare handler would answer
	// other bytes than the server it is compared with.
	other, err := NewWebEnv(ctx, t.TempDir(), 200, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := MeasureAPI(ctx, []*WebEnv{env, other}, 1, 2, 50*time.Millisecond); err == nil {
		t.Fatal("MeasureAPI compared two stores holding different data")
	}
}

// TestBenchmarkEnginesInKernel runs the commit and PUT benchmarks on both
// engines at a tiny scale: their kernel checks must pass on a correct run.
func TestBenchmarkEnginesInKernel(t *testing.T) {
	requireRoot(t)
	es := engines(t)
	ctx := context.Background()
	c, err := MeasureCommit(ctx, Scale{Servers: 3, Groups: 4, Rules: 5}, es, 2, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.NFT) != 2 || len(c.Engines) != 2 || c.GroupRules == 0 {
		t.Fatalf("commit: %d nft runs, %d engines, %d rules in the group", len(c.NFT), len(c.Engines), c.GroupRules)
	}
	for _, e := range c.Engines {
		if len(e.Commit) != 2 || len(e.ToKernel) != 2 || len(e.Pass) != 2 || e.ToKernel[0] < e.Commit[0] {
			t.Errorf("%s: commits %v, to the kernel %v, passes %v", e.Engine, e.Commit, e.ToKernel, e.Pass)
		}
	}
	p, err := MeasurePut(ctx, rampartBinary(t), t.TempDir(), Scale{Servers: 4, Groups: 4, Rules: 2}, es, 1, 2, 2, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range p.Engines {
		if len(e.Load.RPS) != 1 || len(e.ToKernel) != 2 {
			t.Errorf("%s: %d load runs, %d PUTs alone", e.Engine, len(e.Load.RPS), len(e.ToKernel))
		}
	}
}
