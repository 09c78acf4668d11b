package web

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
)

// logEntryJSON is an entry of a group's packet log as the API answers it.
type logEntryJSON struct {
	Time            string      `json:"time"`
	Host            string      `json:"host"`
	ServerID        *string     `json:"server_id"` // null: no server of the host holds the address
	Direction       string      `json:"direction"`
	Protocol        string      `json:"protocol"`
	Source          string      `json:"source"`
	SourcePort      *uint16     `json:"source_port"` // null without ports (ICMP)
	Destination     string      `json:"destination"`
	DestinationPort *uint16     `json:"destination_port"`
	Verdict         string      `json:"verdict"`
	DecidedBy       decidedJSON `json:"decided_by"`
}

// decidedJSON has the packet tester's shape (explain.RuleRef).
type decidedJSON struct {
	Kind     string `json:"kind"`
	RuleID   string `json:"rule_id,omitempty"`
	Position int    `json:"position,omitempty"`
}

func logEntryToJSON(e store.LogEntry) logEntryJSON {
	j := logEntryJSON{Time: e.Time.UTC().Format(time.RFC3339Nano), Host: e.Host, Direction: string(e.Direction),
		Protocol: e.Protocol, Source: e.Source.String(), Destination: e.Destination.String(), Verdict: string(e.Verdict),
		DecidedBy: decidedJSON(e.DecidedBy)}
	if e.ServerID != "" {
		id := e.ServerID
		j.ServerID = &id
	}
	if e.SourcePort != 0 || e.DestinationPort != 0 {
		sp, dp := e.SourcePort, e.DestinationPort
		j.SourcePort, j.DestinationPort = &sp, &dp
	}
	return j
}

// logQuery reads the query of a log request; the store checks its values.
func logQuery(c echo.Context) (store.LogQuery, error) {
	q := store.LogQuery{Since: c.QueryParam("since"), Verdict: c.QueryParam("verdict"), IP: c.QueryParam("ip")}
	var err error
	q.PerPage, err = queryInt(c, "per_page")
	return q, err
}

// handleGroupLogs handles "GET /instance/v1/zones/:zone/security_groups/:id/logs":
// {"entries": [...], "next": CURSOR}, oldest first, or, with Accept:
// text/event-stream, the entries as they come (see streamLogs).
func (s *Server) handleGroupLogs(c echo.Context) error {
	q, err := logQuery(c)
	if err != nil {
		return err
	}
	if acceptsEventStream(c.Request()) {
		return s.streamLogs(c, q)
	}
	page, err := s.db.LogEntries(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), q)
	if err != nil {
		return err
	}
	entries := make([]logEntryJSON, len(page.Entries))
	for i, e := range page.Entries {
		entries[i] = logEntryToJSON(e)
	}
	return c.JSON(http.StatusOK, map[string]any{"entries": entries, "next": page.Next})
}

// acceptsEventStream reports whether a request asks for server-sent
// events.
func acceptsEventStream(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
			return true
		}
	}
	return false
}

// sseHeartbeat is how often a quiet stream sends a comment, so that
// proxies keep it open and a client gone is noticed by a failed write.
var sseHeartbeat = 15 * time.Second

// streamLogs answers a log request with server-sent events: the entries
// after the query's since (or the Last-Event-ID header, which a client
// resuming sends; or, with neither, the newest page), then each entry as
// it is stored, each event's id its cursor. Between reads it holds no
// database connection: it waits for this console's writes of the log (or
// every store.LogPollInterval, for other consoles' writes) and reads what
// is new in a short transaction. It runs until the client goes or the
// server stops. The server's write timeout still bounds each write (a
// client that stops reading is cut off): each write extends the deadline
// by one write timeout, so that a stream lives as long as its client
// reads it.
func (s *Server) streamLogs(c echo.Context, q store.LogQuery) error {
	ctx := c.Request().Context()
	org, zone, id := orgOf(c), zoneOf(c), c.Param("id")
	if last := c.Request().Header.Get("Last-Event-ID"); last != "" {
		q.Since = last
	}
	// The first read answers a bad query with 400, before the stream
	// starts.
	page, err := s.db.LogEntries(ctx, org, zone, id, q)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(c.Response().Writer)
	// The read timeout is for the request, which is read: net/http lifts
	// it once a request without a body is (Go 1.26 does); lifted here too,
	// so that the stream does not depend on it.
	_ = rc.SetReadDeadline(time.Time{})
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events on at once
	c.Response().WriteHeader(http.StatusOK)
	write := func(b []byte) error {
		if err := rc.SetWriteDeadline(time.Now().Add(s.cfg.Timeouts.Write)); err != nil && err != http.ErrNotSupported {
			return err
		}
		if _, err := c.Response().Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	send := func(entries []store.LogEntry) error {
		var b []byte
		for _, e := range entries {
			data, err := json.Marshal(logEntryToJSON(e))
			if err != nil {
				return err
			}
			b = fmt.Appendf(b, "id: %d\nevent: entry\ndata: %s\n\n", e.Cursor, data)
		}
		if len(b) == 0 {
			return nil
		}
		return write(b)
	}
	// A client that reconnects waits two seconds, and sends the last id.
	if err := write([]byte("retry: 2000\n\n")); err != nil {
		return nil
	}
	if err := send(page.Entries); err != nil {
		return nil
	}
	q.Since, q.PerPage = page.Next, store.MaxLogPerPage
	wake, stop := s.db.WatchLog()
	defer stop()
	poll := time.NewTicker(store.LogPollInterval)
	defer poll.Stop()
	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-beat.C:
			if err := write([]byte(": heartbeat\n\n")); err != nil {
				return nil
			}
			continue
		case <-wake:
		case <-poll.C:
		}
		for {
			page, err := s.db.LogEntries(ctx, org, zone, id, q)
			if err != nil {
				if ctx.Err() == nil {
					// The group deleted, or the store away: the stream
					// ends; a client resumes with its last id.
					s.log.Info("log stream ends", "group", id, "err", err)
				}
				return nil
			}
			if err := send(page.Entries); err != nil {
				return nil
			}
			q.Since = page.Next
			if len(page.Entries) < store.MaxLogPerPage {
				break
			}
		}
	}
}

// handleGroupResetCounters handles "POST /instance/v1/zones/:zone/security_groups/:id/reset_counters":
// the group's counters go back to zero on every host, audited; the answer
// is the group's rules with their counters, as listing them answers.
func (s *Server) handleGroupResetCounters(c echo.Context) error {
	ctx := c.Request().Context()
	if err := s.resetCounters(ctx, orgOf(c), zoneOf(c), c.Param("id")); err != nil {
		return err
	}
	return s.rulesAnswer(ctx, c)
}

// rulesAnswer answers the group of :id's rules with their counters, read
// at one generation.
func (s *Server) rulesAnswer(ctx context.Context, c echo.Context) error {
	_, rules, counters, err := s.db.GroupRulesCounters(ctx, orgOf(c), zoneOf(c), c.Param("id"))
	if err != nil {
		return err
	}
	out := make([]ruleJSON, len(rules))
	for i, r := range rules {
		out[i] = ruleToJSON(r, zoneOf(c))
		withCounter(&out[i], counters[r.ID])
	}
	c.Response().Header().Set("X-Total-Count", strconv.Itoa(len(out)))
	return c.JSON(http.StatusOK, map[string]any{"rules": out, "total_count": len(out)})
}
