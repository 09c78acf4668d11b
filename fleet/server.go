package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rampart-fw/rampart/hostview"
	"github.com/rampart-fw/rampart/store"
)

// Limits of the agents' requests.
const (
	maxSmallBody  = 64 << 10 // enrolment and renewal
	maxReportBody = 32 << 20 // a report with every rule's counters
	requestWait   = 10 * time.Second
)

// AgentHandler returns the agents' endpoint. It must be served over TLS
// with AgentTLSConfig: every path but enrolment authenticates the host by
// its client certificate.
func (c *Console) AgentHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+hostview.PathEnrol, c.handleEnrol)
	// As hostview.ViewPath, ReportPath and CertificatePath make them.
	mux.HandleFunc("GET /v1/hosts/{id}/view", c.handleView)
	mux.HandleFunc("POST /v1/hosts/{id}/report", c.handleReport)
	mux.HandleFunc("POST /v1/hosts/{id}/observations", c.handleObservations)
	mux.HandleFunc("POST /v1/hosts/{id}/certificate", c.handleRenew)
	return mux
}

// AgentTLSConfig returns the TLS configuration of the agents' endpoint: a
// server certificate for names (DNS names or addresses) signed by the
// agents' CA, and client certificates checked against that CA alone (a
// certificate of any other CA fails the handshake).
func (c *Console) AgentTLSConfig(names []string) *tls.Config {
	sc := &serverCerts{ca: c.ca, names: names, lifetime: serverCertLifetime}
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      c.ca.Pool(),
		GetCertificate: sc.get,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// ServeAgents serves the agents' endpoint on ln until ctx ends; its server
// certificate names names (see ServerNames).
func (c *Console) ServeAgents(ctx context.Context, ln net.Listener, names []string) error {
	srv := &http.Server{
		Handler:           c.AgentHandler(),
		TLSConfig:         c.AgentTLSConfig(names),
		ReadHeaderTimeout: requestWait,
		IdleTimeout:       2 * time.Minute,
		// A dead agent's connection is found by HTTP/2 pings, not by
		// waiting for TCP.
		HTTP2:    &http.HTTP2Config{SendPingTimeout: c.heartbeat, PingTimeout: c.heartbeat},
		ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("agents' endpoint: %w", err)
	case <-ctx.Done():
	}
	// The view streams end when the hub stops; what is left gets a few
	// seconds.
	c.hub.closeAll("the console is stopping")
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		srv.Close()
	}
	return nil
}

// ServerNames returns the names the console's certificate should carry
// when none are given: the machine's hostname and the listen address, or
// every address of the machine when it listens on all of them.
func ServerNames(listen string) []string {
	var names []string
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return names
	}
	if ip := net.ParseIP(host); ip == nil && host != "" {
		return append(names, host)
	} else if ip != nil && !ip.IsUnspecified() {
		return append(names, ip.String())
	}
	names = append(names, "localhost")
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			names = append(names, n.IP.String())
		}
	}
	return names
}

// refuse answers an agent's request with an error.
func refuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(hostview.ErrorResponse{Error: msg})
}

func answer(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body of at most limit bytes, within requestWait
// (the server has no read or write timeout of its own: it would end the
// view streams).
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(requestWait))
	rc.SetWriteDeadline(time.Now().Add(2 * requestWait))
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit)).Decode(v); err != nil {
		refuse(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return false
	}
	return true
}

// clientCert returns the verified client certificate of the request and
// the host it names, refusing a request without one or for another host
// than the path's.
func clientCert(w http.ResponseWriter, r *http.Request) (*x509.Certificate, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		refuse(w, http.StatusUnauthorized, "a host certificate is required")
		return nil, false
	}
	leaf := r.TLS.VerifiedChains[0][0]
	if hostview.HostIDOf(leaf) != r.PathValue("id") {
		refuse(w, http.StatusForbidden, "this credential is another host's")
		return nil, false
	}
	return leaf, true
}

// authenticate refuses a request whose certificate is not the current one
// of an existing host, and returns that host.
func (c *Console) authenticate(w http.ResponseWriter, r *http.Request) (store.Host, string, bool) {
	leaf, ok := clientCert(w, r)
	if !ok {
		return store.Host{}, "", false
	}
	id, serial := hostview.HostIDOf(leaf), hostview.Serial(leaf.SerialNumber)
	// Read from the store, not the hub's copy, which may be a moment
	// behind a removal or a new certificate (another console's too).
	h, err := c.db.Host(r.Context(), id)
	switch {
	case store.ErrorCode(err) == store.CodeNotFound:
		refuse(w, http.StatusUnauthorized, "this host was removed")
		return store.Host{}, "", false
	case err != nil:
		c.log.Error("fleet: read host", "host", id, "err", err)
		refuse(w, http.StatusServiceUnavailable, "the console cannot read its store")
		return store.Host{}, "", false
	case h.CertSerial != serial:
		refuse(w, http.StatusUnauthorized, "this certificate is not the host's current one")
		return store.Host{}, "", false
	}
	return h, serial, true
}

// handleEnrol answers POST /v1/enrol: a join secret and a certificate
// request, answered with the host's certificate and the CA.
func (c *Console) handleEnrol(w http.ResponseWriter, r *http.Request) {
	if !c.enrols.Allow() {
		refuse(w, http.StatusTooManyRequests, "too many enrolments: try again shortly")
		return
	}
	var req hostview.EnrolRequest
	if !decode(w, r, maxSmallBody, &req) {
		return
	}
	csr, err := checkCSR(req.CSR)
	if err != nil {
		refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	h, err := c.db.RedeemJoinToken(r.Context(), req.JoinSecret)
	if store.ErrorCode(err) == store.CodeUnauthorized {
		refuse(w, http.StatusUnauthorized, "unknown, used or expired join token")
		return
	}
	if err != nil {
		c.log.Error("fleet: enrol", "err", err)
		refuse(w, http.StatusServiceUnavailable, "the console cannot redeem join tokens now")
		return
	}
	der, err := c.issue(r.Context(), h.ID, csr, newSerial(), c.now().Add(c.certLifetime))
	if err != nil {
		c.log.Error("fleet: enrol", "host", h.Name, "err", err)
		refuse(w, http.StatusInternalServerError, "the console could not issue a certificate")
		return
	}
	c.log.Info("fleet: host enrolled", "host", h.Name, "id", h.ID)
	answer(w, hostview.EnrolResponse{HostID: h.ID, HostName: h.Name, Certificate: der, CA: c.ca.Certificate().Raw})
}

// issue signs a certificate and records it as the host's current one:
// from then on, only it is accepted for the host.
func (c *Console) issue(ctx context.Context, hostID string, csr *x509.CertificateRequest, serial *big.Int, notAfter time.Time) ([]byte, error) {
	der, err := c.ca.issueHost(csr, hostID, serial, notAfter, c.certLifetime)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if err := c.db.SetHostCredential(ctx, hostID, hostview.Serial(serial), cert.NotAfter); err != nil {
		return nil, err
	}
	c.hub.wake() // streams of the certificate replaced end now
	return der, nil
}

// handleRenew answers POST /v1/hosts/{id}/certificate: a certificate
// request, with the host's current certificate, answered with the next
// one, which replaces it at once. A renewal whose answer was lost may be
// asked again with the same old certificate and key: it is answered with
// the same certificate.
func (c *Console) handleRenew(w http.ResponseWriter, r *http.Request) {
	leaf, ok := clientCert(w, r)
	if !ok {
		return
	}
	var req hostview.RenewRequest
	if !decode(w, r, maxSmallBody, &req) {
		return
	}
	csr, err := checkCSR(req.CSR)
	if err != nil {
		refuse(w, http.StatusBadRequest, err.Error())
		return
	}
	id, presented := hostview.HostIDOf(leaf), hostview.Serial(leaf.SerialNumber)
	h, err := c.db.Host(r.Context(), id)
	if store.ErrorCode(err) == store.CodeNotFound {
		refuse(w, http.StatusUnauthorized, "this host was removed")
		return
	}
	if err != nil {
		c.log.Error("fleet: renew", "host", id, "err", err)
		refuse(w, http.StatusServiceUnavailable, "the console cannot read its store")
		return
	}
	next, err := renewalSerial(presented, csr.PublicKey)
	if err != nil {
		refuse(w, http.StatusBadRequest, "certificate request: "+err.Error())
		return
	}
	notAfter := c.now().Add(c.certLifetime)
	switch {
	case presented == h.CertSerial:
	case hostview.Serial(next) == h.CertSerial:
		notAfter = h.CertNotAfter // the same certificate again
	default:
		refuse(w, http.StatusUnauthorized, "this certificate is not the host's current one")
		return
	}
	der, err := c.issue(r.Context(), h.ID, csr, next, notAfter)
	if err != nil {
		c.log.Error("fleet: renew", "host", h.Name, "err", err)
		refuse(w, http.StatusInternalServerError, "the console could not issue a certificate")
		return
	}
	c.log.Info("fleet: host certificate renewed", "host", h.Name)
	answer(w, hostview.RenewResponse{Certificate: der})
}

// handleReport answers POST /v1/hosts/{id}/report.
func (c *Console) handleReport(w http.ResponseWriter, r *http.Request) {
	h, _, ok := c.authenticate(w, r)
	if !ok {
		return
	}
	var rep hostview.Report
	if !decode(w, r, maxReportBody, &rep) {
		return
	}
	if rep.HostID != h.ID {
		refuse(w, http.StatusForbidden, "a host reports for itself only")
		return
	}
	c.reports.receive(h.ID, rep, c.now())
	if rep.Counters != nil {
		// An agent from before Observations reports its counters here
		// alone; a newer one too, at every heartbeat.
		c.obs.hostCounters(h.ID, rep.Counters)
	}
	c.traffic.reports.Add(1)
	c.traffic.reportBytes.Add(uint64(max(r.ContentLength, 0)))
	w.WriteHeader(http.StatusNoContent)
}

// handleObservations answers POST /v1/hosts/{id}/observations: the
// packets the host logged and its counters that moved, kept with the
// host's name.
func (c *Console) handleObservations(w http.ResponseWriter, r *http.Request) {
	h, _, ok := c.authenticate(w, r)
	if !ok {
		return
	}
	var obs hostview.Observations
	if !decode(w, r, maxReportBody, &obs) {
		return
	}
	if obs.HostID != h.ID {
		refuse(w, http.StatusForbidden, "a host reports for itself only")
		return
	}
	c.obs.ingestAgent(h, obs.Entries, obs.Log)
	if obs.Counters != nil {
		c.obs.hostCounters(h.ID, obs.Counters)
	}
	c.traffic.observations.Add(1)
	c.traffic.observationBytes.Add(uint64(max(r.ContentLength, 0)))
	w.WriteHeader(http.StatusNoContent)
}

// handleView answers GET /v1/hosts/{id}/view?generation=N with the view
// stream: what takes the agent from generation N to the host's view (a
// delta, or a full view when no delta can), then a delta per change and a
// heartbeat at every interval, until the agent goes, the host is removed,
// its certificate replaced, or another stream opened for it.
func (c *Console) handleView(w http.ResponseWriter, r *http.Request) {
	h, serial, ok := c.authenticate(w, r)
	if !ok {
		return
	}
	var gen int64
	if s := r.URL.Query().Get("generation"); s != "" {
		var err error
		if gen, err = strconv.ParseInt(s, 10, 64); err != nil || gen < 0 {
			refuse(w, http.StatusBadRequest, "generation must be a number")
			return
		}
	}
	sub, err := c.hub.subscribe(r.Context(), h.ID, serial, gen)
	if err != nil {
		refuse(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer c.hub.unsubscribe(sub)
	// The agent sends all its counters again in this session: compare
	// them with the store's anew (another console may have written them
	// meanwhile).
	c.obs.forget(h.ID)
	w.Header().Set("Content-Type", hostview.ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set(hostview.HeaderHeartbeat, strconv.FormatInt(c.heartbeat.Milliseconds(), 10))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	c.traffic.streams.Add(1)
	defer c.traffic.streams.Add(-1)
	write := func(b []byte) error {
		// A write that does not go through within a few heartbeats is an
		// agent gone without a word.
		rc.SetWriteDeadline(time.Now().Add(3*c.heartbeat + requestWait))
		if _, err := w.Write(b); err != nil {
			return err
		}
		c.traffic.frames.Add(1)
		c.traffic.frameBytes.Add(uint64(len(b)))
		return rc.Flush()
	}
	heartbeat := func() error {
		return write(encodeFrame(hostview.Frame{Type: hostview.FrameHeartbeat,
			Heartbeat: &hostview.Heartbeat{Generation: c.hub.viewGeneration(h.ID), Time: c.now().UTC()}}))
	}
	if err := heartbeat(); err != nil {
		return
	}
	tick := time.NewTicker(c.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.done:
			c.log.Info("fleet: view stream closed", "host", h.Name, "why", sub.reason)
			return
		case f := <-sub.frames:
			if err := write(f); err != nil {
				return
			}
		case <-tick.C:
			if err := heartbeat(); err != nil {
				return
			}
		}
	}
}

// Traffic is what the agents' endpoint carried since the console started:
// for metrics, and for benchmarks (bytes per change and per agent).
type Traffic struct {
	Streams     int64  // view streams open now
	Frames      uint64 // frames written to view streams, heartbeats included
	FrameBytes  uint64 // their bytes (JSON lines, before TLS)
	Reports     uint64 // reports received
	ReportBytes uint64 // their bodies' bytes
	// Observations and ObservationBytes count the agents' Observations
	// (logged packets and counters that moved).
	Observations     uint64
	ObservationBytes uint64
}

type traffic struct {
	streams                                                                  atomic.Int64
	frames, frameBytes, reports, reportBytes, observations, observationBytes atomic.Uint64
}

// Traffic returns the agents' endpoint's totals.
func (c *Console) Traffic() Traffic {
	return Traffic{Streams: c.traffic.streams.Load(), Frames: c.traffic.frames.Load(), FrameBytes: c.traffic.frameBytes.Load(),
		Reports: c.traffic.reports.Load(), ReportBytes: c.traffic.reportBytes.Load(),
		Observations: c.traffic.observations.Load(), ObservationBytes: c.traffic.observationBytes.Load()}
}
