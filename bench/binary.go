package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
)

// BinaryResults are the figures of bin/rampart.
type BinaryResults struct {
	Size         int64
	Loaded       Scale         // of the loaded database
	KernelRules  int           // rules the loaded database compiles to
	StartEmpty   Sample        // exec until /healthz 200, empty database, preview
	StartLoaded  Sample        // same with the loaded database
	StartNFT     Sample        // loaded database, nftables enforcer in a namespace
	Poll         time.Duration // how often /healthz is asked during a start
	Settle       time.Duration // wait before each RSS reading
	PerPage      int           // groups per request when reading every group
	RSS          []int64       // kB, Settle after /healthz answered
	RSSAfterLoad []int64       // kB, Settle after reading every group through the API
}

// HealthzPoll is how often a starting server's /healthz is asked.
const HealthzPoll = time.Millisecond

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// serveProc is one running `rampart serve`.
type serveProc struct {
	cmd    *exec.Cmd
	addr   string
	ns     *NS         // nil: this process's namespace
	stderr *headWriter // the start of its log, for errors
}

// dial connects to addr from inside the server's namespace.
func (p *serveProc) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if p.ns == nil {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return InNS(p.ns, func() (net.Conn, error) {
		return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
	})
}

// client returns an HTTP client for the server with up to conns
// keep-alive connections.
func (p *serveProc) client(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: p.dial, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns},
		Timeout:   30 * time.Second,
	}
}

// headWriter keeps the first bytes written to it and discards the rest:
// enough of a log to say why a server did not start, without keeping
// the log of a load test.
type headWriter struct {
	mu  sync.Mutex
	buf []byte
}

const headMax = 4096

func (w *headWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := headMax - len(w.buf); n > 0 {
		w.buf = append(w.buf, b[:min(n, len(b))]...)
	}
	return len(b), nil
}

func (w *headWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return firstLines(string(w.buf), 5)
}

func (p *serveProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// startServe starts bin serve (with extra arguments) in ns (nil: here) and
// waits for /healthz 200; it returns the time from exec to that answer.
func startServe(bin, db, mode string, ns *NS, extra ...string) (*serveProc, time.Duration, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, 0, err
	}
	args := append([]string{bin, "serve", "--listen", addr, "--db", db, "--enforcer", mode}, extra...)
	if ns != nil {
		args = append([]string{"ip", "netns", "exec", ns.Name}, args...)
	}
	p := &serveProc{cmd: exec.Command(args[0], args[1:]...), addr: addr, ns: ns, stderr: &headWriter{}}
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, p.stderr
	client := &http.Client{Transport: &http.Transport{DialContext: p.dial, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	t0 := time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", strings.Join(args, " "), err)
	}
	for {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, time.Since(t0), nil
			}
		}
		if time.Since(t0) > 30*time.Second {
			p.stop()
			return nil, 0, fmt.Errorf("%s: no /healthz 200 after 30 s (%v): %s", strings.Join(args, " "), err, p.stderr)
		}
		time.Sleep(HealthzPoll)
	}
}

// vmRSS reads VmRSS (kB) of pid.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// readAllGroups reads every group of the zone through the API at base
// (http://host:port), perPage at a time, and checks every answer: a 200
// with a full page of groups, the rest on the last page.
func readAllGroups(client *http.Client, base, zone, secret string, total, perPage int) error {
	for page := 1; (page-1)*perPage < total; page++ {
		url := fmt.Sprintf("%s/instance/v1/zones/%s/security_groups?per_page=%d&page=%d", base, zone, perPage, page)
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-Auth-Token", secret)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		if err := listCheck(min(perPage, total-(page-1)*perPage))(resp.StatusCode, body); err != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
	}
	return nil
}

// MeasureBinary starts bin n times in each setting: emptyDB is a database
// with no group, loadedDB one filled by Populate at loaded in zone, secret
// an API token of it. The empty and loaded starts alternate; the RSS is
// read on the first rssRuns loaded starts.
func MeasureBinary(bin, emptyDB, loadedDB string, loaded Scale, zone, secret string, n, rssRuns int, settle time.Duration) (BinaryResults, error) {
	res := BinaryResults{Loaded: loaded, Poll: HealthzPoll, Settle: settle, PerPage: 100}
	st, err := os.Stat(bin)
	if err != nil {
		return res, err
	}
	res.Size = st.Size()
	for _, c := range allChains(enforcer.Compile(Snapshot(loaded))) {
		res.KernelRules += len(c.Rules)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < n; i++ {
		for _, which := range Order(i, 2) {
			if which == 0 {
				p, d, err := startServe(bin, emptyDB, "preview", nil)
				if err != nil {
					return res, err
				}
				p.stop()
				res.StartEmpty = append(res.StartEmpty, d)
				continue
			}
			p, d, err := startServe(bin, loadedDB, "preview", nil)
			if err != nil {
				return res, err
			}
			res.StartLoaded = append(res.StartLoaded, d)
			if i < rssRuns {
				if err := measureRSS(&res, p, client, zone, secret); err != nil {
					p.stop()
					return res, err
				}
			}
			p.stop()
		}
	}
	if os.Geteuid() != 0 {
		return res, nil
	}
	ns, err := NewNS("bin")
	if err != nil {
		return res, err
	}
	defer ns.Close()
	for i := 0; i < n; i++ {
		p, d, err := startServe(bin, loadedDB, "nftables", ns)
		if err != nil {
			return res, err
		}
		p.stop()
		res.StartNFT = append(res.StartNFT, d)
	}
	return res, nil
}

// measureRSS reads the idle memory of p: Settle after its start, and
// Settle after reading every group through the API (each page checked).
func measureRSS(res *BinaryResults, p *serveProc, client *http.Client, zone, secret string) error {
	time.Sleep(res.Settle)
	kb, err := vmRSS(p.cmd.Process.Pid)
	if err != nil {
		return err
	}
	res.RSS = append(res.RSS, kb)
	if err := readAllGroups(client, "http://"+p.addr, zone, secret, res.Loaded.Groups, res.PerPage); err != nil {
		return fmt.Errorf("RSS: read every group: %w", err)
	}
	time.Sleep(res.Settle)
	if kb, err = vmRSS(p.cmd.Process.Pid); err != nil {
		return err
	}
	res.RSSAfterLoad = append(res.RSSAfterLoad, kb)
	return nil
}
