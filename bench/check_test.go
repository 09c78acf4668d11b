package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
