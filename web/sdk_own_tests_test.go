package web_test

import (
	"os"
	"os/exec"
	"path/filepath"
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
		t.Skip("compiles the SDK's test package; skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain on PATH")
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
