package fleet_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/agent"
	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/fleet"
	"github.com/rampart-fw/rampart/hostview"
	"github.com/rampart-fw/rampart/packetlog"
	"github.com/rampart-fw/rampart/store"
)

// waitFor polls cond until it holds, failing the test after 10 s. It
// returns how long it took: a figure to log, never an assertion.
func waitFor(tb testing.TB, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 10*time.Second {
			tb.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// testLog returns a logger writing to the test's log when -v.
func testLog(tb testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ tb testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Short lifetimes, so that loss and renewal show in seconds.
const (
	testLostAfter = 2 * time.Second
	testHeartbeat = 200 * time.Millisecond
)

// console is a running console in the test process, with the agents'
// endpoint on ln.
type console struct {
	db     *store.DB
	c      *fleet.Console
	host   store.Host
	url    string
	cancel context.CancelFunc
	done   chan struct{}
}

type consoleOpts struct {
	certLifetime time.Duration
	tokenTTL     time.Duration
	backend      enforcer.Backend
	listen       func() (net.Listener, error) // default: 127.0.0.1:0
	names        []string                     // default: 127.0.0.1
	hostName     string
	packetLog    *packetlog.Config // the console's own host's packet log
}

// dbPaths remembers where each test database is, for a second console.
var dbPaths sync.Map

func openDB(tb testing.TB) *store.DB {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "rampart.db")
	db, err := store.Open(context.Background(), path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	dbPaths.Store(db, path)
	tb.Cleanup(func() { db.Close() })
	return db
}

func dbPath(tb testing.TB, db *store.DB) string {
	p, _ := dbPaths.Load(db)
	return p.(string)
}

func startConsole(tb testing.TB, db *store.DB, o consoleOpts) *console {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if o.hostName == "" {
		o.hostName = "console"
	}
	host, err := db.EnsureHost(ctx, o.hostName)
	if err != nil {
		tb.Fatal(err)
	}
	if o.backend == nil {
		o.backend = enforcer.NewPreview("test")
	}
	log := testLog(tb)
	c, err := fleet.New(ctx, fleet.Config{Store: db, Host: host, Backend: o.backend, Logger: log, Version: "test",
		LostAfter: testLostAfter, Heartbeat: testHeartbeat, CertLifetime: o.certLifetime, JoinTokenTTL: o.tokenTTL,
		PacketLog: o.packetLog})
	if err != nil {
		tb.Fatal(err)
	}
	if o.listen == nil {
		o.listen = func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
	}
	ln, err := o.listen()
	if err != nil {
		tb.Fatal(err)
	}
	if o.names == nil {
		o.names = []string{"127.0.0.1"}
	}
	con := &console{db: db, c: c, host: host, url: "https://" + ln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(con.done)
		served := make(chan struct{})
		go func() { defer close(served); c.ServeAgents(ctx, ln, o.names) }()
		c.Run(ctx)
		<-served
	}()
	tb.Cleanup(con.stop)
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		tb.Fatal("the console was not ready within 10 s")
	}
	return con
}

func (c *console) stop() {
	c.cancel()
	<-c.done
}

// hostStatus returns a host's status by name.
func (c *console) hostStatus(tb testing.TB, name string) fleet.HostStatus {
	tb.Helper()
	hosts, err := c.c.Hosts(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	for _, h := range hosts {
		if h.Name == name {
			return h
		}
	}
	return fleet.HostStatus{}
}

// runAgent runs an agent until the test ends or stop is called.
type runningAgent struct {
	a      *agent.Agent
	cancel context.CancelFunc
	done   chan error
}

func startAgent(tb testing.TB, cfg agent.Config) *runningAgent {
	tb.Helper()
	if cfg.Backend == nil {
		cfg.Backend = enforcer.NewPreview("test")
	}
	if cfg.Logger == nil {
		cfg.Logger = testLog(tb)
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 300 * time.Millisecond
	}
	a, err := agent.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningAgent{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	tb.Cleanup(r.stop)
	return r
}

func (r *runningAgent) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // a second stop returns at once
}

// rawHost is a host enrolled by hand, for requests an agent would never
// make.
type rawHost struct {
	id     string
	cert   tls.Certificate
	caPool *x509.CertPool
}

// enrolRaw enrols with a join token, as an agent does, without checking
// the pin (the tests that check it use the agent).
func enrolRaw(tb testing.TB, url, token string) (*rawHost, error) {
	tb.Helper()
	tok, err := hostview.ParseJoinToken(token)
	if err != nil {
		tb.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	body, _ := json.Marshal(hostview.EnrolRequest{JoinSecret: tok.Secret, CSR: csr})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Post(url+hostview.PathEnrol, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("enrol: %d %s", resp.StatusCode, b)
	}
	var er hostview.EnrolResponse
	if err := json.NewDecoder(resp.Body).Decode(&er); err != nil {
		tb.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(er.CA)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &rawHost{id: er.HostID, cert: tls.Certificate{Certificate: [][]byte{er.Certificate}, PrivateKey: key}, caPool: pool}, nil
}

func (h *rawHost) client() *http.Client {
	// The certificate goes whatever CAs the console says it accepts.
	return &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{
		RootCAs: h.caPool, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &h.cert, nil }}}}
}

// get requests path with the host's credential and returns the status.
func (h *rawHost) get(tb testing.TB, url string) int {
	tb.Helper()
	resp, err := h.client().Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (h *rawHost) report(tb testing.TB, url string, r hostview.Report) int {
	tb.Helper()
	body, _ := json.Marshal(r)
	resp, err := h.client().Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// stream opens the host's view stream and returns its frames as they
// come, and a channel closed when the stream ends.
func (h *rawHost) stream(tb testing.TB, url string) (<-chan hostview.Frame, <-chan struct{}) {
	tb.Helper()
	resp, err := h.client().Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("stream: %d", resp.StatusCode)
	}
	frames, ended := make(chan hostview.Frame, 1024), make(chan struct{})
	go func() {
		defer close(ended)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var f hostview.Frame
			if json.Unmarshal(sc.Bytes(), &f) == nil {
				select {
				case frames <- f:
				default:
				}
			}
		}
	}()
	return frames, ended
}

// must fails the test on err.
func must[T any](tb testing.TB) func(T, error) T {
	return func(v T, err error) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}
