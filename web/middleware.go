package web

import (
	"fmt"
	"mime"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Timeouts bound how long a client may hold a connection. Zero fields take
// the defaults of DefaultTimeouts.
type Timeouts struct {
	ReadHeader time.Duration // the request line and headers
	Read       time.Duration // the whole request, body included
	Write      time.Duration // each answer; a streaming route extends its own
	Idle       time.Duration // a kept-alive connection between requests
}

// DefaultTimeouts are generous for people and API clients, short enough
// that a client trickling a body cannot hold a connection for long.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 30 * time.Second, Idle: 120 * time.Second}

func (t Timeouts) orDefaults() Timeouts {
	d := DefaultTimeouts
	if t.ReadHeader > 0 {
		d.ReadHeader = t.ReadHeader
	}
	if t.Read > 0 {
		d.Read = t.Read
	}
	if t.Write > 0 {
		d.Write = t.Write
	}
	if t.Idle > 0 {
		d.Idle = t.Idle
	}
	return d
}

// HTTPServer returns the http.Server to serve s with: read-header, read and
// idle timeouts are the server's; the write deadline is set per request by
// the writeDeadline middleware, so that a route that streams can extend
// its own (http.ResponseController) without lifting it for every route.
func (s *Server) HTTPServer() *http.Server {
	t := s.cfg.Timeouts
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		IdleTimeout:       t.Idle,
		ErrorLog:          nil,
	}
}

// writeDeadline gives each answer s.cfg.Timeouts.Write to be written.
func (s *Server) writeDeadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// Not every ResponseWriter supports deadlines (httptest's
		// recorder does not): then there is nothing to set.
		_ = http.NewResponseController(c.Response().Writer).SetWriteDeadline(time.Now().Add(s.cfg.Timeouts.Write))
		return next(c)
	}
}

// recoverPanic turns a panic in a handler into an internal error, answered
// as any other (JSON on the API, a page on the console), logged with its
// stack and counted. http.ErrAbortHandler is net/http's way of aborting a
// response on purpose and goes on up.
func (s *Server) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.metric.panics.Inc()
			s.log.Error("panic", "method", c.Request().Method, "path", c.Request().URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic serving %s: %v", c.Request().URL.Path, v)
		}()
		return next(c)
	}
}

// consoleBodyLimit bounds the console's request bodies before anything
// reads them, and refuses multipart bodies: no console form needs one, and
// net/http spools large multipart parts to temporary files, which a form
// parsed on a copy of the request leaves behind.
func consoleBodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Body == nil || r.Body == http.NoBody {
			return next(c)
		}
		if ct := r.Header.Get(echo.HeaderContentType); ct != "" {
			if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "multipart/form-data" {
				return echo.NewHTTPError(http.StatusUnsupportedMediaType, "The console takes forms as application/x-www-form-urlencoded, not multipart.")
			}
		}
		limit := int64(MaxBodyBytes)
		if strings.HasPrefix(r.URL.Path, "/ip-sets") {
			limit = MaxIPSetBodyBytes // a pasted list of up to 100,000 entries
		}
		if r.ContentLength > limit {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
		return next(c)
	}
}
