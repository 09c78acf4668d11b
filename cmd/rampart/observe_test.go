package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// TestLogFlags: --log-rate and --log-burst (and their variables) are
// checked before anything starts, naming the flag.
func TestLogFlags(t *testing.T) {
	db := filepath.Join(t.TempDir(), "r.db")
	for _, args := range [][]string{
		{"serve", "--db", db, "--enforcer", "preview", "--log-rate", "0"},
		{"serve", "--db", db, "--enforcer", "preview", "--log-burst", "0"},
		{"agent", "--state-dir", t.TempDir(), "--enforcer", "preview", "--log-rate", "0"},
	} {
		err := run(context.Background(), args, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "--log-rate and --log-burst") {
			t.Errorf("%v: %v, want a refusal naming the flags", args, err)
		}
	}
	t.Setenv("RAMPART_LOG_RATE", "fast")
	err := run(context.Background(), []string{"serve", "--db", db, "--enforcer", "preview"}, strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "RAMPART_LOG_RATE") {
		t.Errorf("RAMPART_LOG_RATE=fast: %v", err)
	}
}

// TestLogFile: entries are appended as JSON lines, one per entry, to a
// file created 0600 (and narrowed to it when found wider), kept across
// openings.
func TestLogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "packets.jsonl")
	if err := os.WriteFile(path, []byte("{\"earlier\":true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := openLogFile(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 500, time.UTC)
	e := store.LogEntry{GroupID: "g1", Time: at, Host: "h1", ServerID: "s1", Direction: store.Inbound, Protocol: "TCP",
		Source: netip.MustParseAddr("2001:db8::7"), SourcePort: 40000, Destination: netip.MustParseAddr("2001:db8::1"), DestinationPort: 22,
		Verdict: store.Drop, DecidedBy: store.Decider{Kind: "default_policy"}}
	f.write([]store.LogEntry{e, e})
	f.Close()
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(lines) != 3 || lines[0] != `{"earlier":true}` {
		t.Fatalf("file:\n%s", raw)
	}
	want := `{"time":"2026-03-01T12:00:00.0000005Z","group_id":"g1","host":"h1","server_id":"s1","direction":"inbound","protocol":"TCP",` +
		`"source":"2001:db8::7","source_port":40000,"destination":"2001:db8::1","destination_port":22,"verdict":"drop","decided_by":{"kind":"default_policy"}}`
	if lines[1] != want || !json.Valid([]byte(lines[2])) {
		t.Errorf("line\n got %s\nwant %s", lines[1], want)
	}
}
