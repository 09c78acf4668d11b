package web_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestScalewaySDKOwnTests runs the security-group tests that ship with the
// official SDK (api/instance/v1/security_group_utils_test.go) against this
// server. They normally replay recorded cassettes; SDK_UPDATE_CASSETTES
// makes them talk to SCW_API_URL instead, and rewrite the cassettes, so
// they run in a writable copy of the module from the module cache.
func TestScalewaySDKOwnTests(t *testing.T) {
	if testing.Short() {
		skipUnlessRequired(t, "compiles the SDK's test package; skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		skipUnlessRequired(t, "no go toolchain on PATH")
	}
	out, err := exec.Command(goBin, "list", "-m", "-f", "{{.Dir}}", "github.com/scaleway/scaleway-sdk-go").Output()
	if err != nil {
		t.Fatalf("locate the SDK module: %v", err)
	}
	src := strings.TrimSpace(string(out))
	dir := filepath.Join(t.TempDir(), "sdk")
	if err := exec.Command("cp", "-r", src, dir).Run(); err != nil {
		t.Fatalf("copy the SDK: %v", err)
	}
	if err := exec.Command("chmod", "-R", "u+w", dir).Run(); err != nil {
		t.Fatal(err)
	}

	env := newTestEnv(t)
	cmd := exec.Command(goBin, "test", "-count=1", "-run", "^(TestAPI_UpdateSecurityGroup|TestAPI_UpdateSecurityGroupRule)$", "-v", "./api/instance/v1/")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"SDK_UPDATE_CASSETTES=true",
		"SCW_API_URL="+env.url,
		"SCW_ACCESS_KEY="+env.access,
		"SCW_SECRET_KEY="+env.secret,
		"SCW_DEFAULT_PROJECT_ID="+env.org.ID,
		"SCW_DEFAULT_ZONE=fr-par-1",
		"GOFLAGS=-mod=mod",
	)
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the SDK's own tests failed against Rampart: %v\n%s", err, res)
	}
	for _, name := range []string{"--- PASS: TestAPI_UpdateSecurityGroup ", "--- PASS: TestAPI_UpdateSecurityGroupRule ",
		"--- PASS: TestAPI_UpdateSecurityGroupRule/Switching_to_ICMP", "--- PASS: TestAPI_UpdateSecurityGroupRule/Remove_ports"} {
		if !strings.Contains(string(res), name) {
			t.Fatalf("missing %q in the SDK's output:\n%s", name, res)
		}
	}
}

// skipUnlessRequired skips t, or fails it when RAMPART_REQUIRE_ALL=1: CI
// must run the SDK's own tests, whatever would keep them from running.
func skipUnlessRequired(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("RAMPART_REQUIRE_ALL") == "1" {
		t.Fatalf("RAMPART_REQUIRE_ALL=1 but the SDK's own tests cannot run: %s", why)
	}
	t.Skip(why)
}

// TestScalewaySDKOwnTestsFailUnderRequireAll is finding 14 of issue 11 for
// the SDK's own tests: with -short, or on a machine without the go
// command, they skipped even in CI. Each case runs them again, as CI does
// (RAMPART_REQUIRE_ALL=1): they must fail, and say why.
func TestScalewaySDKOwnTestsFailUnderRequireAll(t *testing.T) {
	for _, c := range []struct {
		name    string
		args    []string
		missing string // a command taken off PATH
		why     string
	}{
		{name: "short", args: []string{"-test.short"}, why: "skipped with -short"},
		{name: "no go", missing: "go", why: "no go toolchain on PATH"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := os.Getenv("PATH")
			if c.missing != "" {
				path = pathWithout(t, c.missing)
			}
			env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
				return strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "RAMPART_REQUIRE_ALL=")
			})
			args := append([]string{"-test.run=^TestScalewaySDKOwnTests$", "-test.v", "-test.count=1"}, c.args...)
			cmd := exec.Command(os.Args[0], args...)
			cmd.Env = append(env, "PATH="+path, "RAMPART_REQUIRE_ALL=1")
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the SDK's own tests passed under RAMPART_REQUIRE_ALL=1:\n%s", out)
			}
			if want := "RAMPART_REQUIRE_ALL=1 but the SDK's own tests cannot run: "; !strings.Contains(string(out), want) ||
				!strings.Contains(string(out), c.why) {
				t.Errorf("the SDK's own tests did not fail for %q:\n%s", c.why, out)
			}
		})
	}
}

// pathWithout returns a directory of links to every command on PATH but
// those named, each the one PATH would find: as on a machine without them.
func pathWithout(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			link := filepath.Join(dir, e.Name())
			if slices.Contains(names, e.Name()) {
				continue
			}
			if _, err := os.Lstat(link); err == nil {
				continue // an earlier directory of PATH has it
			}
			if err := os.Symlink(filepath.Join(d, e.Name()), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}
