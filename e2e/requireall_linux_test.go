//go:build linux

package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHostFirewallCheckSeesRuleChanges is finding 15 of issue 11: the
// check that the suite leaves the host's firewall alone compared table
// names only, so a test writing a rule into a table the host already had
// would pass. Here the "host" is a network namespace the test makes, with
// a table of its own: traffic moving its counters is no change, a rule
// added to it is, and so is an iptables rule.
func TestHostFirewallCheckSeesRuleChanges(t *testing.T) {
	needNamespaces(t, "the host firewall check's test")
	ns := newNetns(t, "fw")
	in := []string{"ip", "netns", "exec", ns}
	run(t, append(in, "nft", "add table inet host; "+
		"add chain inet host input { type filter hook input priority 0; policy accept; }; "+
		"add rule inet host input tcp dport 22 counter accept")...)
	before := dumpIn(t, in)

	// A connection attempt moves the counter (nothing listens: refused).
	dial := dialInNetns(filepath.Join("/run/netns", ns))
	if c, err := dial(context.Background(), "tcp", "127.0.0.1:22"); err == nil {
		c.Close()
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect to port 22 in %s: %v", ns, err)
	}
	if listed := run(t, append(in, "nft", "list", "table", "inet", "host")...); strings.Contains(listed, "packets 0 bytes 0") {
		t.Fatalf("the counter did not move, so this test shows nothing:\n%s", listed)
	}
	if got := dumpIn(t, in); got != before {
		t.Errorf("counters alone changed the dump:\n%s", lineDiff(before, got))
	}

	run(t, append(in, "nft", "add", "rule", "inet", "host", "input", "tcp", "dport", "9", "drop")...)
	withRule := dumpIn(t, in)
	if withRule == before {
		t.Errorf("a rule added to an existing table left the dump unchanged:\n%s", withRule)
	} else if d := lineDiff(before, withRule); !strings.Contains(d, "+ \t\ttcp dport 9 drop") {
		t.Errorf("the dump's difference does not show the new rule:\n%s", d)
	}

	if _, err := exec.LookPath("iptables"); err == nil {
		run(t, append(in, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "7", "-j", "DROP")...)
		if got := dumpIn(t, in); got == withRule {
			t.Errorf("an iptables rule left the dump unchanged:\n%s", got)
		}
	}
}

// TestEnforcingFlowFailsWithoutNftUnderRequireAll is finding 14 of issue
// 11 for the e2e suite: on a machine without nft the enforcing flow used
// to pass without ever looking at the namespace's ruleset. The suite is
// run again, as CI runs it (RAMPART_REQUIRE_ALL=1), with a PATH that lacks
// nft: the flow must fail, and say why.
func TestEnforcingFlowFailsWithoutNftUnderRequireAll(t *testing.T) {
	needNamespaces(t, "the test of the suite without nft")
	out, err := runSuiteWithout(t, "^TestSyncStateEnforcing$", "nft")
	if err == nil {
		t.Fatalf("the suite passed without nft under RAMPART_REQUIRE_ALL=1:\n%s", out)
	}
	if !strings.Contains(out, "--- FAIL: TestSyncStateEnforcing") ||
		!strings.Contains(out, "RAMPART_REQUIRE_ALL=1 but nft is not installed") {
		t.Errorf("TestSyncStateEnforcing did not fail for want of nft:\n%s", out)
	}
}

// TestHostFirewallCheckFailsWithoutNftUnderRequireAll is finding 15's
// other half: without nft the host's firewall cannot be compared, which
// used to pass unnoticed. The suite, run with no test at all under
// RAMPART_REQUIRE_ALL=1 and a PATH that lacks nft, must fail.
func TestHostFirewallCheckFailsWithoutNftUnderRequireAll(t *testing.T) {
	needNamespaces(t, "the test of the suite without nft")
	out, err := runSuiteWithout(t, "^$", "nft")
	if err == nil {
		t.Fatalf("the suite passed without nft under RAMPART_REQUIRE_ALL=1:\n%s", out)
	}
	if !strings.Contains(out, "RAMPART_REQUIRE_ALL=1 but the host's firewall cannot be compared") {
		t.Errorf("the suite did not fail for want of nft to compare the host's firewall:\n%s", out)
	}
}

// runSuiteWithout runs this test binary again with -test.run pattern,
// RAMPART_REQUIRE_ALL=1, the binary under test, and a PATH from which the
// commands named in missing are gone: as on a machine without them.
func runSuiteWithout(t *testing.T, pattern string, missing ...string) (string, error) {
	t.Helper()
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "RAMPART_REQUIRE_ALL=") || strings.HasPrefix(kv, "RAMPART_BIN=")
	})
	env = append(env, "PATH="+pathWithout(t, missing...), "RAMPART_REQUIRE_ALL=1", "RAMPART_BIN="+suite.bin)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+pattern, "-test.v", "-test.count=1")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pathWithout returns a directory of links to every command on PATH but
// those named, each the one PATH would find.
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
	for _, name := range names {
		if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			t.Fatalf("%s is still found, at %s", name, p)
		}
	}
	return dir
}

// newNetns creates a network namespace with its loopback up, deleted when
// t ends.
func newNetns(t *testing.T, role string) string {
	t.Helper()
	ns := "rampart-e2e-" + role + "-" + randomHex(4)
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", ns, err, out)
		}
	})
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

func dumpIn(t *testing.T, prefix []string) string {
	t.Helper()
	d, err := firewallDump(prefix...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
