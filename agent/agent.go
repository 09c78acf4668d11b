// Package agent enforces one host's security groups for a remote console:
// the enforcer's reconciler (the same compile, diff and netlink apply as
// the console's) with the console's view stream as its source.
//
// The agent enrols once with a join token (SECRET.PIN: it trusts the
// console whose CA matches PIN, then keeps that CA), keeps its credential
// and its last complete view in its state directory, applies that view at
// boot before any console answers, follows the view stream (moving to the
// next console when one dies), heals drift locally, reports what it
// applied, and renews its certificate before it expires.
package agent

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
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/hostview"
	"github.com/rampart-fw/rampart/packetlog"
)

// Defaults and limits.
const (
	// defaultHeartbeat is used until a console says its own.
	defaultHeartbeat = 10 * time.Second
	// missedHeartbeats is how many heartbeats may go missing before the
	// console is taken for dead and the next one tried.
	missedHeartbeats  = 3
	defaultMaxBackoff = 5 * time.Second
	minBackoff        = 100 * time.Millisecond
	maxFrame          = 256 << 20
	requestTimeout    = 15 * time.Second
)

// Config sets up an Agent.
type Config struct {
	// Consoles are the consoles' agent endpoints (https://host:port),
	// tried in turn. Empty: those kept at enrolment.
	Consoles []string
	// JoinToken (SECRET.PIN, from `rampart host add`) enrols the agent;
	// it is needed only while the state directory holds no credential.
	JoinToken string
	// StateDir keeps the credential and the last view (created 0700).
	StateDir string
	// Backend applies the rulesets: nftables on a host.
	Backend enforcer.Backend
	Logger  *slog.Logger
	Version string
	// DialContext, when set, makes the agent's connections (tests dial
	// from a network namespace).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxBackoff bounds the wait between rounds of attempts to reach the
	// consoles (0: five seconds).
	MaxBackoff time.Duration
	// PacketLog, when set, reads the packets this host's rules log
	// (NFLOG), while Backend enforces with nftables, and sends them to the
	// console with the counters that moved (hostview.Observations). Its
	// Deliver is the agent's.
	PacketLog *packetlog.Config
}

// Agent is one host's agent. Its methods are safe for concurrent use.
type Agent struct {
	cfg Config
	log *slog.Logger
	src *viewSource
	rec *enforcer.Reconciler

	mu        sync.Mutex
	cred      *parsed      // nil until enrolled
	client    *http.Client // the connected console's, nil between sessions
	base      string       // its URL
	heartbeat time.Duration
	reconnect context.CancelCauseFunc // ends the current session

	// renewing is held while a renewal is under way: a session started
	// then (the console ends the old certificate's stream as soon as it
	// issued the new one) waits for the new certificate.
	renewing sync.Mutex

	ready     chan struct{} // see Ready
	readyOnce sync.Once

	saveView  chan struct{} // the view changed: write it
	connected chan struct{} // a session started: report in full

	logq logQueue // the packet log's entries, until a console takes them
}

// New returns the agent of cfg, reading its state directory. Nothing runs
// until Run.
func New(cfg Config) (*Agent, error) {
	if cfg.Backend == nil {
		return nil, errors.New("agent: a backend is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = defaultMaxBackoff
	}
	consoles := make([]string, len(cfg.Consoles))
	for i, u := range cfg.Consoles {
		norm, err := consoleURL(u)
		if err != nil {
			return nil, err
		}
		consoles[i] = norm
	}
	cfg.Consoles = consoles
	if err := openStateDir(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, src: newViewSource(), heartbeat: defaultHeartbeat,
		ready: make(chan struct{}), saveView: make(chan struct{}, 1), connected: make(chan struct{}, 1)}
	a.rec = enforcer.NewReconciler(a.src, cfg.Backend, cfg.Logger)
	var c credential
	ok, err := readJSON(cfg.StateDir, credentialFile, &c)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if ok {
		if a.cred, err = parseCredential(c); err != nil {
			return nil, fmt.Errorf("agent: %s: %w", credentialFile, err)
		}
		var v hostview.View
		if ok, err := readJSON(cfg.StateDir, viewFile, &v); err != nil {
			// A view that cannot be read is not applied; the console
			// sends a full one.
			a.log.Error("agent: the stored view cannot be read", "err", err)
		} else if ok && v.HostID == c.HostID {
			a.src.set(v)
			a.log.Info("agent: applying the stored view", "generation", v.Generation)
		}
	}
	return a, nil
}

// consoleURL normalises a console address: https is the only scheme, and
// may be left out.
func consoleURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("agent: console %q: want https://HOST:PORT", s)
	}
	return "https://" + u.Host, nil
}

// HostID returns the host the agent enrolled as, "" before.
func (a *Agent) HostID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cred == nil {
		return ""
	}
	return a.cred.cred.HostID
}

// Generation returns the generation of the view the agent holds.
func (a *Agent) Generation() int64 { return a.src.current().Generation }

// Console returns the console the agent follows, "" when it follows none.
func (a *Agent) Console() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.base
}

// Ready is closed once the view kept from before was applied (the first
// apply attempted), or at once when none was kept: what a service manager
// waits for before the network comes up, so that a host comes up
// protected.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Reconciler returns the agent's reconciler.
func (a *Agent) Reconciler() *enforcer.Reconciler { return a.rec }

// Run enrols if needed, then enforces the host's view until ctx ends. The
// ruleset stays in the kernel after it returns.
func (a *Agent) Run(ctx context.Context) error {
	if a.HostID() == "" {
		if err := a.enrol(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while enrolling
			}
			return err
		}
	}
	consoles := a.cfg.Consoles
	if len(consoles) == 0 {
		a.mu.Lock()
		consoles = a.cred.cred.Consoles
		a.mu.Unlock()
	}
	if len(consoles) == 0 {
		return errors.New("agent: no console given, and none kept at enrolment")
	}
	applied, cancel := a.rec.Watch()
	defer cancel()
	var wg sync.WaitGroup
	select {
	case <-a.src.has:
		wg.Go(func() {
			select {
			case <-ctx.Done():
			case <-a.rec.Ready():
			}
			a.readyOnce.Do(func() { close(a.ready) })
		})
	default:
		a.readyOnce.Do(func() { close(a.ready) }) // nothing kept to apply
	}
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-a.src.has:
			a.rec.Run(ctx)
		}
	})
	wg.Go(func() { a.keepView(ctx) })
	wg.Go(func() { a.report(ctx, applied) })
	wg.Go(func() { a.readLog(ctx) })
	wg.Go(func() { a.observe(ctx) })
	wg.Go(func() { a.renewLoop(ctx, consoles) })
	a.follow(ctx, consoles)
	wg.Wait()
	return nil
}

// keepView writes the view to the state directory whenever it changed;
// changes that come during a write are written together after it.
func (a *Agent) keepView(ctx context.Context) {
	var written int64 = -1
	save := func() {
		v := a.src.current()
		if v.Generation == written || v.HostID == "" {
			return
		}
		if err := writeJSON(a.cfg.StateDir, viewFile, v); err != nil {
			a.log.Error("agent: keep the view", "err", err)
			return
		}
		written = v.Generation
	}
	for {
		select {
		case <-ctx.Done():
			save()
			return
		case <-a.saveView:
			save()
		}
	}
}

// setView makes v the host's desired state.
func (a *Agent) setView(v hostview.View) {
	a.src.set(v)
	select {
	case a.saveView <- struct{}{}:
	default:
	}
}

// follow reads the view stream of one console after another until ctx
// ends: a console that dies, or that cannot be reached, makes way for the
// next; one that ends the stream itself (a new certificate, a stream out of
// step) is asked again. After a round of consoles that could not be
// reached, or whose streams ended at once, it waits, longer each round.
func (a *Agent) follow(ctx context.Context, consoles []string) {
	backoff := minBackoff
	failed := 0
	for i := 0; ctx.Err() == nil; i = (i + 1) % len(consoles) {
		base := consoles[i]
		start := time.Now()
		started, err := a.session(ctx, base)
		if ctx.Err() != nil {
			return
		}
		var oos outOfStep
		switch {
		case errors.As(err, &oos):
			a.log.Warn("agent: the stream is out of step; asking again", "console", base, "err", err)
			i-- // the same console again, which sends a full view
		case errors.Is(err, errNewCertificate), started && errors.Is(err, io.EOF):
			a.log.Info("agent: the console ended the stream; asking again", "console", base, "err", err)
			i--
		case started:
			a.log.Warn("agent: the view stream ended", "console", base, "err", err)
		default:
			a.log.Warn("agent: cannot reach the console", "console", base, "err", err)
		}
		if started && time.Since(start) > 2*time.Second {
			failed, backoff = 0, minBackoff
			continue
		}
		if failed++; failed < len(consoles) {
			continue
		}
		failed = 0
		wait := backoff/2 + mrand.N(backoff/2+1)
		backoff = min(2*backoff, a.cfg.MaxBackoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Why a session was ended from the agent's side.
var (
	errSilent         = errors.New("the console was silent for too long")
	errNewCertificate = errors.New("a new certificate: connecting again")
)

// outOfStep is a delta that does not start where the agent stands.
type outOfStep struct{ err error }

func (e outOfStep) Error() string { return e.err.Error() }

// session reads one console's view stream until it ends; started says
// whether the console answered with a stream.
func (a *Agent) session(ctx context.Context, base string) (started bool, err error) {
	a.renewing.Lock()
	a.renewing.Unlock()
	ctx, cancelCause := context.WithCancelCause(ctx)
	cancel := func() { cancelCause(errSilent) }
	defer cancel()
	tr := a.transport(nil)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	a.mu.Lock()
	hostID := a.cred.cred.HostID
	a.reconnect = cancelCause
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		if a.base == base {
			a.client, a.base = nil, ""
		}
		a.mu.Unlock()
	}()

	u := base + hostview.ViewPath(hostID) + "?generation=" + strconv.FormatInt(a.src.current().Generation, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	// The answer's headers come at once; the body is the stream.
	hctx, hcancel := context.WithTimeout(ctx, requestTimeout)
	stop := context.AfterFunc(hctx, func() {
		if errors.Is(hctx.Err(), context.DeadlineExceeded) {
			cancel()
		}
	})
	resp, err := client.Do(req)
	hcancel()
	stop()
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, refusal(resp)
	}
	hb := a.heartbeatOf(resp)
	a.mu.Lock()
	a.client, a.base, a.heartbeat = client, base, hb
	a.mu.Unlock()
	select {
	case a.connected <- struct{}{}:
	default:
	}
	a.log.Info("agent: following the console", "console", base, "heartbeat", hb)

	// A console silent for a few heartbeats is dead, even if TCP does not
	// say so (a link down): the session ends and the next is tried.
	watchdog := time.AfterFunc(missedHeartbeats*hb, cancel)
	defer watchdog.Stop()
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := readLine(r)
		if err != nil {
			if cause := context.Cause(ctx); ctx.Err() != nil && cause != nil {
				return true, cause
			}
			return true, err
		}
		watchdog.Reset(missedHeartbeats * hb)
		var f hostview.Frame
		if err := json.Unmarshal(line, &f); err != nil {
			return true, fmt.Errorf("bad frame: %w", err)
		}
		switch {
		case f.Type == hostview.FrameView && f.View != nil:
			if f.View.HostID != hostID {
				return true, fmt.Errorf("a view for host %s, not %s", f.View.HostID, hostID)
			}
			a.setView(*f.View)
		case f.Type == hostview.FrameDelta && f.Delta != nil:
			v, err := a.src.current().Apply(*f.Delta)
			if err != nil {
				return true, outOfStep{err}
			}
			a.setView(v)
		case f.Type == hostview.FrameHeartbeat:
		default:
			// A frame of a later protocol: skipped.
		}
	}
}

// readLine reads one line, without its newline, of at most maxFrame bytes.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		switch {
		case err == nil:
			return bytes.TrimSuffix(line, []byte("\n")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(line) > maxFrame {
				return nil, fmt.Errorf("a frame over %d bytes", maxFrame)
			}
		case errors.Is(err, io.EOF) && len(line) == 0:
			return nil, io.EOF // the console ended the stream
		case errors.Is(err, io.EOF):
			// A frame cut short is not applied: views are applied whole.
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

func (a *Agent) heartbeatOf(resp *http.Response) time.Duration {
	ms, err := strconv.ParseInt(resp.Header.Get(hostview.HeaderHeartbeat), 10, 64)
	if err != nil || ms <= 0 {
		return defaultHeartbeat
	}
	return time.Duration(ms) * time.Millisecond
}

// refusal reads a console's refusal.
func refusal(resp *http.Response) error {
	var e hostview.ErrorResponse
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	return &RefusedError{Status: resp.StatusCode, Message: e.Error}
}

// RefusedError is a console's refusal of a request.
type RefusedError struct {
	Status  int
	Message string
}

// Temporary reports whether the request may succeed if asked again
// later: the console was busy or could not answer.
func (e *RefusedError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the console refused: %d %s", e.Status, e.Message)
}

// transport returns an HTTP transport to the consoles: TLS 1.3, trusting
// the kept CA and presenting the host's certificate, or, to enrol
// (pin set), trusting the console whose chain holds the CA of that pin.
func (a *Agent) transport(pinned *tls.Config) *http.Transport {
	cfg := pinned
	if cfg == nil {
		a.mu.Lock()
		pool := a.cred.pool
		a.mu.Unlock()
		cfg = &tls.Config{
			MinVersion: tls.VersionTLS13,
			RootCAs:    pool,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				a.mu.Lock()
				defer a.mu.Unlock()
				return &a.cred.tls, nil
			},
		}
	}
	dial := a.cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}).DialContext
	}
	return &http.Transport{
		DialContext:           dial,
		TLSClientConfig:       cfg,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
		IdleConnTimeout:       90 * time.Second,
		HTTP2:                 &http.HTTP2Config{SendPingTimeout: 15 * time.Second, PingTimeout: 10 * time.Second},
	}
}

// pinnedTLS is the TLS configuration of an enrolment: nothing is trusted
// yet but the CA that the join token pins, which the console must present
// in its chain, and which must have signed its certificate for host.
func pinnedTLS(pin, host string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The chain is checked by VerifyConnection, against the pin: no
		// CA is known before it.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the console presented no certificate")
			}
			var ca *x509.Certificate
			for _, c := range cs.PeerCertificates[1:] {
				if hostview.Pin(c.Raw) == pin {
					ca = c
				}
			}
			if ca == nil {
				return errPin
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: host,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			return err
		},
	}
}

// errPin is a console whose CA is not the one the join token pins.
var errPin = errors.New("the console's CA does not match the join token's pin: not the console that issued it")

// enrol redeems the join token at the first console that answers, and
// keeps the credential. Consoles that cannot be reached are tried again
// until one answers; a refusal, or a console of another CA, ends it.
func (a *Agent) enrol(ctx context.Context) error {
	if a.cfg.JoinToken == "" {
		return errors.New("agent: not enrolled: a join token is needed (rampart host add prints one)")
	}
	if len(a.cfg.Consoles) == 0 {
		return errors.New("agent: a console is needed to enrol")
	}
	tok, err := hostview.ParseJoinToken(a.cfg.JoinToken)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	_, keyDER, err := newKey()
	if err != nil {
		return err
	}
	key, _ := x509.ParsePKCS8PrivateKey(keyDER)
	csr, err := newCSR(key)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(hostview.EnrolRequest{JoinSecret: tok.Secret, CSR: csr})
	backoff := minBackoff
	for {
		for _, base := range a.cfg.Consoles {
			u, _ := url.Parse(base)
			tr := a.transport(pinnedTLS(tok.Pin, u.Hostname()))
			var resp hostview.EnrolResponse
			err := post(ctx, &http.Client{Transport: tr}, base+hostview.PathEnrol, body, &resp)
			tr.CloseIdleConnections()
			var refused *RefusedError
			switch {
			case errors.As(err, &refused) && !refused.Temporary(), errors.Is(err, errPin):
				// Every console of the database would say the same.
				return fmt.Errorf("agent: enrol at %s: %w", base, err)
			case err != nil:
				a.log.Warn("agent: enrol: cannot reach the console", "console", base, "err", err)
				continue
			}
			return a.enrolled(tok, base, keyDER, resp)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent: enrol: %w", ctx.Err())
		case <-time.After(backoff/2 + mrand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, a.cfg.MaxBackoff)
	}
}

// enrolled keeps the credential an enrolment answered.
func (a *Agent) enrolled(tok hostview.JoinToken, base string, keyDER []byte, resp hostview.EnrolResponse) error {
	if hostview.Pin(resp.CA) != tok.Pin {
		return fmt.Errorf("agent: enrol at %s: the CA sent is not the pinned one", base)
	}
	c := credential{HostID: resp.HostID, HostName: resp.HostName, Consoles: a.cfg.Consoles,
		Key: keyDER, Certificate: resp.Certificate, CA: resp.CA}
	p, err := parseCredential(c)
	if err != nil {
		return fmt.Errorf("agent: enrol at %s: %w", base, err)
	}
	if err := writeJSON(a.cfg.StateDir, credentialFile, c); err != nil {
		return fmt.Errorf("agent: keep the credential: %w", err)
	}
	a.mu.Lock()
	a.cred = p
	a.mu.Unlock()
	a.log.Info("agent: enrolled", "host", resp.HostName, "id", resp.HostID, "console", base)
	return nil
}

func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: new key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: new key: %w", err)
	}
	return key, der, nil
}

func newCSR(key any) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "rampart agent"}}, key)
	if err != nil {
		return nil, fmt.Errorf("agent: certificate request: %w", err)
	}
	return der, nil
}

// post sends a JSON request and decodes the JSON answer into out (nil:
// none expected).
func post(ctx context.Context, client *http.Client, u string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return refusal(resp)
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}
