package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/store"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestHostsAndAgent: `host add` prints a join token with which `agent`
// (previewing: an in-process test must not touch the kernel) enrols at
// `serve --agent-listen`, keeping its state 0700; `host remove` refuses a
// host with servers and removes one without.
func TestHostsAndAgent(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "r.db")
	var added map[string]string
	if err := json.Unmarshal([]byte(runCmd(t, "", "host", "add", "--db", db, "--name", "edge-1")), &added); err != nil {
		t.Fatal(err)
	}
	if !uuidPattern.MatchString(added["host_id"]) || added["name"] != "edge-1" || !strings.Contains(added["join_token"], ".") {
		t.Fatalf("host add = %v", added)
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"host", "add", "--db", db, "--name", "bad name"}, nil, &out, &errOut); err == nil {
		t.Fatal("host add accepted a bad name")
	}

	web, agents := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var serveLog, agentLog bytes.Buffer
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"serve", "--listen", web, "--db", db, "--enforcer", "preview", "--host-name", "console",
			"--agent-listen", agents, "--agent-names", "127.0.0.1", "--lost-after", "3s"}, nil, &bytes.Buffer{}, &serveLog)
	}()
	state := filepath.Join(dir, "agent")
	agentDone := make(chan error, 1)
	go func() {
		agentDone <- run(ctx, []string{"agent", "--console", "https://" + agents, "--join-token", added["join_token"],
			"--state-dir", state, "--enforcer", "preview"}, nil, &bytes.Buffer{}, &agentLog)
	}()
	sdb, err := store.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		reports, _ := sdb.HostReports(ctx)
		if r, ok := reports[added["host_id"]]; ok && !r.LastSeen.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report from the agent within 10 s\nserve:\n%s\nagent:\n%s", serveLog.String(), agentLog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: %v %v", fi.Mode(), err)
	}
	if resp, err := http.Get("http://" + web + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	hosts, _ := sdb.Hosts(ctx)
	var names []string
	for _, h := range hosts {
		names = append(names, h.Name)
	}
	if strings.Join(names, ",") != "console,edge-1" {
		t.Fatalf("hosts = %v, want the console's own and edge-1", names)
	}
	cancel()
	for _, ch := range []chan error{served, agentDone} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("stopped with %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("did not stop")
		}
	}

	// A host with a server stays; without, it goes.
	org, _ := sdb.EnsureOrganization(context.Background(), "default")
	if _, err := sdb.CreateServer(context.Background(), org.ID, "fr-par-1", store.ServerInput{Name: "vm", Interface: "vm1", Host: "edge-1"}); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"host", "remove", "--db", db, "--name", "edge-1"}, nil, &out, &errOut); err == nil ||
		!strings.Contains(err.Error(), "servers") {
		t.Fatalf("removing a host with servers: %v", err)
	}
	runCmd(t, "", "host", "add", "--db", db, "--name", "edge-2")
	if got := runCmd(t, "", "host", "remove", "--db", db, "--name", "edge-2"); !strings.Contains(got, "removed host edge-2") {
		t.Fatalf("host remove said %q", got)
	}
}

func TestSDNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	if err := sdNotify("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Fatalf("without a service manager: %v", err)
	}
}
