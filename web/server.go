// Package web serves Rampart's console (HTML with htmx) and its
// Scaleway-compatible JSON API on one Echo instance.
package web

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// Enforcer is what the web layer needs from the enforcer: the sync state of
// groups, their counters and their compiled text.
type Enforcer interface {
	Ready() <-chan struct{}
	GroupState(groupID string, generation int64) (state, reason string)
	Counters(groupID string) map[string]enforcer.Counter
	GroupText(groupID string) string
	Mode() (mode, reason string)
}

// Config wires a Server.
type Config struct {
	Store    *store.DB
	Enforcer Enforcer
	Logger   *slog.Logger
	Version  string
	// SecureCookies marks session cookies Secure; set it when serving TLS
	// or behind a TLS proxy.
	SecureCookies bool
}

// Server is the HTTP handler of the console and the API.
type Server struct {
	e      *echo.Echo
	db     *store.DB
	enf    Enforcer
	log    *slog.Logger
	cfg    Config
	metric *metrics
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
	s := &Server{e: echo.New(), db: cfg.Store, enf: cfg.Enforcer, log: cfg.Logger, cfg: cfg}
	s.e.HideBanner, s.e.HidePort = true, true
	s.e.HTTPErrorHandler = s.handleError
	s.metric = newMetrics(s)
	s.e.Use(s.observe)
	s.e.GET("/healthz", s.handleHealthz)
	s.e.GET("/metrics", echo.WrapHandler(s.metric.handler()))
	s.registerAPIRoutes()
	s.registerConsoleRoutes()
	return s, nil
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
