package web

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestSessionPollKeepsFlash: a request that changes nothing in its session
// (a poll) and ends after another request of the same session wrote to it
// (a form leaving a flash message) does not write back what it read: the
// message survives. scs marks every session modified when it has an idle
// timeout, so this request used to commit its stale copy over the message
// (the roll-back message of the group page was lost to a counters poll).
func TestSessionPollKeepsFlash(t *testing.T) {
	s, _ := newInternalServer(t, &bytes.Buffer{})
	con := s.console
	loaded, release := make(chan struct{}), make(chan struct{})
	s.e.GET("/t/start", func(c echo.Context) error {
		con.sessions.Put(c.Request().Context(), "started", "yes")
		return c.NoContent(http.StatusNoContent)
	}, con.loadSession)
	s.e.GET("/t/poll", func(c echo.Context) error {
		close(loaded)
		<-release
		return c.NoContent(http.StatusNoContent)
	}, con.loadSession)
	s.e.GET("/t/flash", func(c echo.Context) error {
		con.flash(c, "info", "kept")
		return c.NoContent(http.StatusNoContent)
	}, con.loadSession)
	s.e.GET("/t/read", func(c echo.Context) error {
		return c.String(http.StatusOK, con.sessions.GetString(c.Request().Context(), sessFlash))
	}, con.loadSession)
	ts := httptest.NewServer(s)
	defer ts.Close()
	client := &http.Client{Jar: newJar()}
	get := func(path string) string {
		t.Helper()
		resp, err := client.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	get("/t/start")
	done := make(chan struct{})
	go func() {
		defer close(done)
		get("/t/poll")
	}()
	<-loaded // the poll holds the session as it was
	get("/t/flash")
	close(release)
	<-done
	if got := get("/t/read"); got != "kept" {
		t.Fatalf("the flash after a poll that ended last: %q, want %q", got, "kept")
	}
}
