package agent

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/hostview"
	"github.com/rampart-fw/rampart/store"
)

func TestConsoleURL(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://console:9443", "https://console:9443", true},
		{"console:9443", "https://console:9443", true},
		{"https://console:9443/some/path", "https://console:9443", true},
		{"http://console:9443", "", false}, // TLS only: the credential is a client certificate
		{"https://", "", false},
	}
	for _, tt := range tests {
		got, err := consoleURL(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("consoleURL(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestReadLine: frames are applied whole; a frame cut by the end of the
// stream is not one.
func TestReadLine(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		lines []string
		end   error
	}{
		{"whole frames", "{\"a\":1}\n{\"b\":2}\n", []string{`{"a":1}`, `{"b":2}`}, io.EOF},
		{"cut frame", "{\"a\":1}\n{\"b\":", []string{`{"a":1}`}, io.ErrUnexpectedEOF},
		{"long frame", strings.Repeat("x", 100000) + "\n", []string{strings.Repeat("x", 100000)}, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			for _, want := range tt.lines {
				got, err := readLine(r)
				if err != nil || string(got) != want {
					t.Fatalf("readLine = %.20q, %v; want %.20q", got, err, want)
				}
			}
			if _, err := readLine(r); !errors.Is(err, tt.end) {
				t.Fatalf("at the end: %v, want %v", err, tt.end)
			}
		})
	}
}

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := openStateDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("state directory %v, want 0700", fi.Mode().Perm())
	}
	for _, body := range []string{"first", "second"} {
		if err := writeFile(dir, "f", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "f"))
	if err != nil || string(b) != "second" {
		t.Fatalf("read %q %v", b, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "f")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("file %v, want 0600", fi.Mode().Perm())
	}
}

// testCredential makes a credential for host id from a CA of the test's.
func testCredential(t *testing.T, id string) credential {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	ca, _ = x509.ParseCertificate(caDER)
	key, keyDER, err := newKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: id},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, leaf, ca, key.Public(), caKey)
	return credential{HostID: id, HostName: "h1", Consoles: []string{"https://127.0.0.1:1"}, Key: keyDER, Certificate: der, CA: caDER}
}

// TestBootsFromKeptView: an agent whose console cannot be reached applies
// the view it kept; a view kept for another host is not applied.
func TestBootsFromKeptView(t *testing.T) {
	tests := []struct {
		name    string
		viewFor string
		applied bool
	}{
		{"its own view", "host-1", true},
		{"another host's", "host-2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := writeJSON(dir, credentialFile, testCredential(t, "host-1")); err != nil {
				t.Fatal(err)
			}
			snap := store.Snapshot{Generation: 7, Rules: map[string][]store.Rule{}, Unreadable: map[string][]string{},
				Groups:  []store.Group{{ID: "g1", Generation: 7, InboundDefaultPolicy: store.Drop, OutboundDefaultPolicy: store.Accept}},
				Servers: []store.Server{{ID: "s1", Interface: "vm1", HostID: tt.viewFor, SecurityGroup: store.ServerRef{ID: "g1"}}}}
			if err := writeJSON(dir, viewFile, hostview.FromSnapshot(tt.viewFor, snap)); err != nil {
				t.Fatal(err)
			}
			a, err := New(Config{StateDir: dir, Backend: enforcer.NewPreview("test"), MaxBackoff: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			defer func() { cancel(); <-done }()
			deadline := time.Now().Add(10 * time.Second)
			select {
			case <-a.Ready():
			case <-time.After(10 * time.Second):
				t.Fatal("not ready within 10 s")
			}
			if tt.applied && a.Reconciler().Stats().AppliedGeneration != 7 {
				t.Fatal("ready before the kept view was applied")
			}
			for tt.applied && a.Reconciler().Stats().AppliedGeneration != 7 {
				if time.Now().After(deadline) {
					t.Fatal("the kept view was not applied within 10 s")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !tt.applied {
				time.Sleep(200 * time.Millisecond)
				if g := a.Reconciler().Stats().AppliedGeneration; g != 0 {
					t.Fatalf("applied generation %d from another host's view", g)
				}
				return
			}
			if text := a.Reconciler().RulesetText(); !strings.Contains(text, "vm1") {
				t.Fatalf("ruleset without the server's interface:\n%s", text)
			}
		})
	}
}
