package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"
)

// What the suite needs from the machine (ARCHITECTURE.md, "Tests"). Nothing is ever
// downloaded: the driver is the playwright-core npm package that
// package-lock.json pins, run by the system's node, and the browser is
// Debian's chromium package.
const (
	chromiumPath          = "/usr/bin/chromium"
	playwrightCoreVersion = "1.52.0" // the driver playwright-go v0.5200.1 speaks to
)

var chromiumArgs = []string{
	"--no-sandbox", "--disable-gpu", "--disable-background-networking",
	"--disable-component-update", "--disable-sync", "--no-first-run",
}

// suite is what TestMain sets up once for every test: the binary, the
// preview-mode server the flows share, and one browser. Each test gets a
// fresh browser context and its own organization.
var suite struct {
	root      string // the module's root
	tmp       string // removed at the end
	bin       string // the rampart binary under test
	srv       *server
	pw        *playwright.Playwright
	browser   playwright.Browser
	missing   string // what the machine lacks for the browser tests
	broken    error  // the browser is there but could not be started
	axeSource string
}

// requireAll makes the tests that would skip for lack of a browser, root,
// ip, nft or the driver fail instead, and so the suite without nft (the
// host's firewall cannot be compared); CI sets it.
var requireAll = os.Getenv("RAMPART_REQUIRE_ALL") == "1"

func TestMain(m *testing.M) {
	start := time.Now()
	// The host's firewall is read before anything starts and compared
	// once everything has stopped (see hostfirewall_test.go).
	hostBefore, hostErr := firewallDump()
	code := runSuite(m)
	if msg, c := hostFirewallVerdict(hostBefore, hostErr); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		code = max(code, c)
	}
	fmt.Printf("e2e suite took %s\n", time.Since(start).Round(100*time.Millisecond))
	os.Exit(code)
}

func runSuite(m *testing.M) int {
	var err error
	if suite.root, err = filepath.Abs(".."); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if suite.tmp, err = os.MkdirTemp("", "rampart-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(suite.tmp)

	if suite.bin, err = buildBinary(suite.root, suite.tmp); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	suite.srv, err = startServer(serverOptions{name: "preview", dir: filepath.Join(suite.tmp, "preview"), enforcer: "preview"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer suite.srv.stop()

	startBrowser()
	defer func() {
		if suite.browser != nil {
			_ = suite.browser.Close()
		}
		if suite.pw != nil {
			_ = suite.pw.Stop()
		}
	}()
	return m.Run()
}

// buildBinary builds ./cmd/rampart once, or takes RAMPART_BIN (the
// Makefile passes bin/rampart, which `make build` has just made).
func buildBinary(root, tmp string) (string, error) {
	if bin := os.Getenv("RAMPART_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("RAMPART_BIN: %w", err)
		}
		return abs, nil
	}
	bin := filepath.Join(tmp, "rampart")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/rampart")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/rampart: %w\n%s", err, out)
	}
	return bin, nil
}

// startBrowser starts the driver and Chromium, or records in suite.missing
// what is not installed (the browser tests then skip) or in suite.broken
// why an installed browser did not start (they fail).
func startBrowser() {
	if _, err := os.Stat(chromiumPath); err != nil {
		suite.missing = chromiumPath + " is not installed (apt-get install -y chromium, or make deps as root)"
		return
	}
	axe, err := os.ReadFile(filepath.Join(suite.root, "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		suite.missing = "node_modules/axe-core is not installed (npm ci, or make deps)"
		return
	}
	suite.axeSource = string(axe)
	dir, missing, err := driverDirectory(suite.root, suite.tmp)
	if missing != "" {
		suite.missing = missing
		return
	}
	if err != nil {
		suite.broken = err
		return
	}
	suite.pw, err = playwright.Run(&playwright.RunOptions{
		DriverDirectory:     dir,
		SkipInstallBrowsers: true,
		Stderr:              os.Stderr,
		Stdout:              os.Stdout,
	})
	if err != nil {
		suite.broken = fmt.Errorf("start the playwright driver in %s: %w", dir, err)
		return
	}
	suite.browser, err = suite.pw.Chromium.Launch(playwright.BrowserTypeLaunchOptions{
		ExecutablePath: playwright.String(chromiumPath),
		Args:           chromiumArgs,
		Headless:       playwright.Bool(true),
	})
	if err != nil {
		suite.broken = fmt.Errorf("launch %s: %w", chromiumPath, err)
	}
}

// driverDirectory returns the directory playwright-go runs its driver
// from: PLAYWRIGHT_DRIVER_PATH if set, otherwise one made in tmp with
// "package" linked to node_modules/playwright-core and "node" to the
// system's node. It returns a non-empty missing when something is not
// installed.
func driverDirectory(root, tmp string) (dir, missing string, err error) {
	if dir := os.Getenv("PLAYWRIGHT_DRIVER_PATH"); dir != "" {
		return dir, "", nil
	}
	pkg := filepath.Join(root, "node_modules", "playwright-core")
	raw, err := os.ReadFile(filepath.Join(pkg, "package.json"))
	if err != nil {
		return "", "node_modules/playwright-core is not installed (npm ci, or make deps)", nil
	}
	var meta struct{ Version string }
	if err := json.Unmarshal(raw, &meta); err != nil {
		return "", "", fmt.Errorf("read %s/package.json: %w", pkg, err)
	}
	if meta.Version != playwrightCoreVersion {
		return "", "", fmt.Errorf("node_modules/playwright-core is %s; playwright-go v0.5200.1 needs %s (npm ci)", meta.Version, playwrightCoreVersion)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return "", "node is not installed (apt-get install -y nodejs, or make deps as root)", nil
	}
	if node, err = filepath.Abs(node); err != nil {
		return "", "", err
	}
	dir = filepath.Join(tmp, "playwright-driver")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	if err := os.Symlink(pkg, filepath.Join(dir, "package")); err != nil {
		return "", "", err
	}
	if err := os.Symlink(node, filepath.Join(dir, "node")); err != nil {
		return "", "", err
	}
	return dir, "", nil
}

// needBrowser skips t when the machine has no browser, or fails it when
// RAMPART_REQUIRE_ALL=1 or when the browser is there but did not start.
func needBrowser(t *testing.T) {
	t.Helper()
	switch {
	case suite.broken != nil:
		t.Fatalf("browser: %v", suite.broken)
	case suite.missing != "" && requireAll:
		t.Fatalf("RAMPART_REQUIRE_ALL=1 but %s", suite.missing)
	case suite.missing != "":
		t.Skipf("skipping the browser test: %s", suite.missing)
	}
}

// artifactDir returns e2e/artifacts/<test>, emptied.
func artifactDir(t *testing.T) string {
	t.Helper()
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	dir := filepath.Join("artifacts", name)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
