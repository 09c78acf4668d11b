// Package web serves Rampart's console (HTML with htmx) and its
// Scaleway-compatible JSON API on one Echo instance.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/explain"
	"github.com/rampart-fw/rampart/store"
)

// Enforcer is what the web layer needs from the enforcer: the sync state of
// groups, their compiled text and chains. (Their counters are the store's:
// see store.DB.GroupCounters.)
type Enforcer interface {
	Ready() <-chan struct{}
	GroupState(groupID string, generation int64) (state store.SyncState, reason string)
	GroupText(groupID string) string
	// Chains returns the chains last compiled for a group, with the group
	// generation they were compiled from, and false when none were.
	Chains(groupID string) (enforcer.GroupChains, bool)
	// GroupSets returns the sets those chains match, with their elements.
	GroupSets(groupID string) []enforcer.Set
	Mode() (mode, reason string)
}

// Config wires a Server.
type Config struct {
	Store    *store.DB
	Enforcer Enforcer
	Logger   *slog.Logger
	Version  string
	// SecureCookies marks the console's cookies Secure (and names them
	// __Host-…); set it when serving TLS or behind a TLS proxy. A trusted
	// proxy that sends X-Forwarded-Proto: https has the same effect for
	// the requests it forwards.
	SecureCookies bool
	// TrustedProxies are the addresses of reverse proxies whose
	// X-Forwarded-For and X-Forwarded-Proto are believed. Without them the
	// client address is the socket's, whatever a client sends.
	TrustedProxies []netip.Prefix
	// Timeouts of the HTTP server (see HTTPServer); zero fields take
	// DefaultTimeouts.
	Timeouts Timeouts
	// Fleet tells the states of hosts and of a group on each host; nil
	// shows what the store knows.
	Fleet Fleet
	// JoinToken turns a host's join secret into the token its agent is
	// given (which pins the console's CA); nil gives the secret as is.
	JoinToken func(ctx context.Context, secret string) (string, error)
	// JoinTokenTTL is how long a join token made in the console works;
	// zero is the store's default (an hour).
	JoinTokenTTL time.Duration
}

// Fleet is what the console shows of the hosts Rampart programs.
type Fleet interface {
	// Hosts returns every host with its state.
	Hosts(ctx context.Context) ([]store.HostStatus, error)
	// GroupHosts returns how each host that holds a server of the group
	// holds it at generation.
	GroupHosts(groupID string, generation int64) []store.GroupOnHost
}

// Server is the HTTP handler of the console and the API.
type Server struct {
	e       *echo.Echo
	db      *store.DB
	enf     Enforcer
	log     *slog.Logger
	cfg     Config
	metric  *metrics
	console *console
	// analyses keeps each group's last analysis (see explain.go); analyze
	// is (*explain.Group).Analyze, replaced by tests that need a group too
	// complex to analyse.
	analyses analysisCache
	analyze  func(*explain.Group) (explain.Analysis, error)
}

var zonePattern = regexp.MustCompile(`^[a-z]{2}-[a-z]{3,7}-[0-9]{1,2}$`)

// CheckZones reports a zone list that the Scaleway SDK would not accept.
func CheckZones(zones []string) error {
	if len(zones) == 0 {
		return errors.New("at least one zone is needed")
	}
	for _, z := range zones {
		if !zonePattern.MatchString(z) {
			return fmt.Errorf("zone %q does not look like fr-par-1 (^[a-z]{2}-[a-z]{3,7}-[0-9]{1,2}$)", z)
		}
	}
	return nil
}

// New returns the server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Enforcer == nil {
		return nil, errors.New("web: store and enforcer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Timeouts = cfg.Timeouts.orDefaults()
	csrfKey, err := cfg.Store.Secret(context.Background(), "csrf", 32)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s := &Server{e: echo.New(), db: cfg.Store, enf: cfg.Enforcer, log: cfg.Logger, cfg: cfg,
		analyze: (*explain.Group).Analyze}
	s.e.HideBanner, s.e.HidePort = true, true
	s.e.HTTPErrorHandler = s.handleError
	s.e.IPExtractor = s.clientIP
	s.metric = newMetrics(s)
	s.console = newConsole(s, csrfKey)
	s.e.Use(s.observe, s.recoverPanic, s.writeDeadline)
	s.registerRoutes()
	return s, nil
}

// fromTrustedProxy reports whether the request's peer is one of the
// configured proxies.
func (s *Server) fromTrustedProxy(r *http.Request) bool {
	if len(s.cfg.TrustedProxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// clientIP is the client's address: the socket's, or, from a trusted
// proxy, the last address of X-Forwarded-For that is not itself a trusted
// proxy. Echo's default believes any client's header, which let sign-in
// throttling be dodged with a made-up X-Forwarded-For.
func (s *Server) clientIP(r *http.Request) string {
	direct := echo.ExtractIPDirect()(r)
	if !s.fromTrustedProxy(r) {
		return direct
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range s.cfg.TrustedProxies {
		_, n, err := net.ParseCIDR(p.String())
		if err == nil {
			opts = append(opts, echo.TrustIPRange(n))
		}
	}
	return echo.ExtractIPFromXFFHeader(opts...)(r)
}

// secureRequest reports whether the console's cookies must be Secure for
// this request.
func (s *Server) secureRequest(r *http.Request) bool {
	return s.cfg.SecureCookies || r.TLS != nil ||
		(s.fromTrustedProxy(r) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"))
}

// cookieName returns the name of a console cookie: with the __Host- prefix
// when Secure, which browsers then only accept from this very origin over
// HTTPS, for the whole site, without a Domain.
func cookieName(base string, secure bool) string {
	if secure {
		return "__Host-" + base
	}
	return base
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.e.ServeHTTP(w, r) }

// handleHealthz handles "GET /healthz": 200 once the store answers and the
// enforcer has made its first apply.
func (s *Server) handleHealthz(c echo.Context) error {
	select {
	case <-s.enf.Ready():
	default:
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "starting"})
	}
	if _, err := s.db.Generation(c.Request().Context()); err != nil {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "store unavailable"})
	}
	mode, _ := s.enf.Mode()
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "enforcer": mode, "version": s.cfg.Version})
}

// observe times each request once, turns its error into a response, then
// writes one structured log line and records the request's metrics. It
// never logs headers or bodies, where secrets travel.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		elapsed := time.Since(start)
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		s.log.Info("request", "method", c.Request().Method, "route", route, "path", c.Request().URL.Path,
			"status", status, "duration_ms", float64(elapsed.Microseconds())/1000)
		s.metric.observe(route, c.Request().Method, status, elapsed)
		return nil
	}
}
