package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// server is one running `rampart serve` with its own database.
type server struct {
	name   string
	db     string
	url    string // http://127.0.0.1:PORT
	cmd    *exec.Cmd
	done   chan struct{}
	log    string       // the server's log file
	client *http.Client // reaches the server (inside its namespace if it has one)
}

type serverOptions struct {
	name     string
	dir      string   // holds the database and the log
	enforcer string   // preview or nftables
	prefix   []string // runs the binary through this, e.g. ip netns exec NS
	client   *http.Client
	extra    []string // more arguments of serve
}

// startServer starts `rampart serve` on a free port and waits until
// /healthz answers 200.
func startServer(o serverOptions) (*server, error) {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, err
	}
	port := 8080 // a namespace has its own ports
	if o.prefix == nil {
		var err error
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	s := &server{
		name:   o.name,
		db:     filepath.Join(o.dir, "rampart.db"),
		url:    "http://127.0.0.1:" + strconv.Itoa(port),
		log:    filepath.Join(o.dir, "serve.log"),
		done:   make(chan struct{}),
		client: o.client,
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	logFile, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	args := append(append([]string{}, o.prefix...), suite.bin, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--db", s.db, "--enforcer", o.enforcer)
	args = append(args, o.extra...)
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", strings.Join(args, " "), err)
	}
	go func() {
		_ = s.cmd.Wait()
		logFile.Close()
		close(s.done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := s.client.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("rampart serve (%s) exited before it was healthy:\n%s", o.name, s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("rampart serve (%s): no 200 from /healthz within 20 s (last: %v):\n%s", o.name, err, s.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the server (SIGTERM, then SIGKILL after 10 s) and keeps its
// log under e2e/artifacts.
func (s *server) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	if raw, err := os.ReadFile(s.log); err == nil {
		_ = os.MkdirAll("artifacts", 0o755)
		_ = os.WriteFile(filepath.Join("artifacts", "server-"+s.name+".log"), raw, 0o644)
	}
}

func (s *server) logTail() string {
	raw, _ := os.ReadFile(s.log)
	if len(raw) > 4000 {
		raw = raw[len(raw)-4000:]
	}
	return string(raw)
}

// freePort returns a TCP port that was free a moment ago: serve's
// --listen 127.0.0.1:0 would not tell which one it took.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// account is a console user in an organization of its own, so that the
// flows sharing one server never see each other's groups or defaults.
type account struct {
	Email    string
	Password string
	Org      string
}

// newAccount creates a user in organization org with
// `rampart user create`, the password on standard input.
func (s *server) newAccount(t *testing.T, org string, flags ...string) account {
	t.Helper()
	a := account{Email: org + "@example.com", Password: "pw-" + randomHex(8), Org: org}
	cmd := exec.Command(suite.bin, append([]string{"user", "create", "--db", s.db, "--email", a.Email, "--org", org}, flags...)...)
	cmd.Stdin = strings.NewReader(a.Password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rampart user create: %v\n%s", err, out)
	}
	// Each test's organization may bind interfaces of its own (the flows
	// register servers); an operator grants them, as on a real install.
	grant := exec.Command(suite.bin, "grant", "--db", s.db, "--org", org, "--interfaces", "*", "--local")
	if out, err := grant.CombinedOutput(); err != nil {
		t.Fatalf("rampart grant: %v\n%s", err, out)
	}
	return a
}

// apiToken is what `rampart token create` prints.
type apiToken struct {
	AccessKey      string `json:"access_key"`
	SecretKey      string `json:"secret_key"`
	OrganizationID string `json:"organization_id"`
	ProjectID      string `json:"project_id"`
}

// newToken creates an API token for org with `rampart token create`.
func (s *server) newToken(t *testing.T, org string) apiToken {
	t.Helper()
	out, err := exec.Command(suite.bin, "token", "create", "--db", s.db, "--org", org).Output()
	if err != nil {
		t.Fatalf("rampart token create: %v", err)
	}
	var tok apiToken
	if err := json.Unmarshal(out, &tok); err != nil {
		t.Fatalf("rampart token create printed %q: %v", out, err)
	}
	return tok
}

// api calls the JSON API with secret as X-Auth-Token and decodes the
// answer into out (if not nil). It returns the status.
func (s *server) api(t *testing.T, method, path, secret string, body, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// apiRule is the part of the API's rule the flows check.
type apiRule struct {
	ID           string `json:"id"`
	Direction    string `json:"direction"`
	Protocol     string `json:"protocol"`
	Action       string `json:"action"`
	IPRange      string `json:"ip_range"`
	DestPortFrom *int   `json:"dest_port_from"`
	Position     int    `json:"position"`
	Editable     bool   `json:"editable"`
}

// apiGroup is the part of the API's security group the flows check.
type apiGroup struct {
	ID                    string `json:"id"`
	Name                  string `json:"name"`
	State                 string `json:"state"`
	Stateful              bool   `json:"stateful"`
	InboundDefaultPolicy  string `json:"inbound_default_policy"`
	OutboundDefaultPolicy string `json:"outbound_default_policy"`
	EnableDefaultSecurity bool   `json:"enable_default_security"`
	OrganizationDefault   bool   `json:"organization_default"`
	Servers               []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"servers"`
}

// rules returns a group's editable rules in one direction, in the order
// the API answers them.
func (s *server) rules(t *testing.T, tok apiToken, groupID, direction string) []apiRule {
	t.Helper()
	var body struct {
		Rules []apiRule `json:"rules"`
	}
	path := groupPath(groupID) + "/rules"
	if code := s.api(t, http.MethodGet, path, tok.SecretKey, nil, &body); code != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200", path, code)
	}
	var out []apiRule
	for _, r := range body.Rules {
		if r.Editable && r.Direction == direction {
			out = append(out, r)
		}
	}
	return out
}

// groupByName finds a group of the token's organization by name.
func (s *server) groupByName(t *testing.T, tok apiToken, zone, name string) apiGroup {
	t.Helper()
	var body struct {
		Groups []apiGroup `json:"security_groups"`
	}
	path := "/instance/v1/zones/" + zone + "/security_groups?per_page=100"
	if code := s.api(t, http.MethodGet, path, tok.SecretKey, nil, &body); code != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200", path, code)
	}
	for _, g := range body.Groups {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no security group named %q in %s through the API", name, zone)
	return apiGroup{}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func groupPath(id string) string { return "/instance/v1/zones/" + zone + "/security_groups/" + id }

// createGroup creates a group through the API with the console's
// recommended configuration (inbound drop, SMTP blocked), stateful or not.
func (s *server) createGroup(t *testing.T, tok apiToken, name string, stateful bool) apiGroup {
	t.Helper()
	var body struct {
		Group apiGroup `json:"security_group"`
	}
	in := map[string]any{
		"name": name, "project": tok.ProjectID, "stateful": stateful,
		"inbound_default_policy": "drop", "outbound_default_policy": "accept", "enable_default_security": true,
	}
	path := "/instance/v1/zones/" + zone + "/security_groups"
	if code := s.api(t, http.MethodPost, path, tok.SecretKey, in, &body); code != http.StatusCreated {
		t.Fatalf("POST %s = %d, want 201", path, code)
	}
	return body.Group
}

// addRule appends an accept rule for TCP port from 0.0.0.0/0 through the
// API.
func (s *server) addRule(t *testing.T, tok apiToken, groupID, direction string, port int) {
	t.Helper()
	in := map[string]any{
		"direction": direction, "action": "accept", "protocol": "TCP", "ip_range": "0.0.0.0/0",
		"dest_port_from": port, "position": 0,
	}
	if code := s.api(t, http.MethodPost, groupPath(groupID)+"/rules", tok.SecretKey, in, nil); code != http.StatusCreated {
		t.Fatalf("POST %s/rules = %d, want 201", groupPath(groupID), code)
	}
}

// createServer registers a server through the API and returns its ID.
func (s *server) createServer(t *testing.T, tok apiToken, in map[string]any) string {
	t.Helper()
	var body struct {
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
	}
	path := "/instance/v1/zones/" + zone + "/servers"
	if code := s.api(t, http.MethodPost, path, tok.SecretKey, in, &body); code != http.StatusCreated {
		t.Fatalf("POST %s = %d, want 201", path, code)
	}
	return body.Server.ID
}

// group reads a group through the API.
func (s *server) group(t *testing.T, tok apiToken, id string) apiGroup {
	t.Helper()
	var body struct {
		Group apiGroup `json:"security_group"`
	}
	if code := s.api(t, http.MethodGet, groupPath(id), tok.SecretKey, nil, &body); code != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200", groupPath(id), code)
	}
	return body.Group
}

// waitState waits until the API answers state for a group.
func (s *server) waitState(t *testing.T, tok apiToken, id, state string) apiGroup {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		g := s.group(t, tok, id)
		if g.State == state {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("API: state of %s = %q after 15 s, want %q\nserver log:\n%s", g.Name, g.State, state, s.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// apiWith calls the API with extra headers; body is JSON, or text sent
// as text/plain. It returns the status, the headers and the body.
func (s *server) apiWith(t *testing.T, method, path, secret string, body any, headers map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ctype = strings.NewReader(b), "text/plain"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(raw), "application/json"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", secret)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}
