package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The suite must never touch the host's own firewall: whatever enforces
// runs in a network namespace a test creates. TestMain reads the host's
// whole ruleset before anything starts and after everything has stopped,
// and the tests that enforce read it around themselves too, so that a test
// writing into the host (a new table, or a rule in a table that was already
// there) fails, and says which.

// firewallDump's answers when the ruleset cannot be read at all: nothing
// can be compared, which RAMPART_REQUIRE_ALL=1 turns into a failure.
var (
	errNoNft   = errors.New("nft is not installed (apt-get install -y nftables, or make deps as root)")
	errNotRoot = errors.New("not root, and nft needs root to read the ruleset")
)

// What moves on its own in a ruleset nobody changes: nft's counters and
// quotas (--stateless already leaves them out; the pattern is a second
// guard), the time left to dynamic set elements, and iptables-save's
// header and footer (a date) and chain counters.
var (
	nftState      = regexp.MustCompile(`(counter) packets \d+ bytes \d+|(quota (?:over )?\d+ \S+) used \d+ \S+| expires \S+?(,| |$)`)
	iptablesState = regexp.MustCompile(`(?m)^#.*\n|\[\d+:\d+\]`)
)

// firewallDump returns `nft --stateless list ruleset` followed by what
// iptables-save and ip6tables-save print where they are installed (rules
// only they show: xtables-legacy), with what moves on its own taken out.
// prefix runs the commands elsewhere, e.g. ip netns exec NS.
func firewallDump(prefix ...string) (string, error) {
	if _, err := exec.LookPath("nft"); err != nil {
		return "", errNoNft
	}
	if os.Geteuid() != 0 {
		return "", errNotRoot
	}
	var b strings.Builder
	out, err := output(prefix, "nft", "--stateless", "list", "ruleset")
	if err != nil {
		return "", err
	}
	b.WriteString("# nft --stateless list ruleset\n")
	b.WriteString(nftState.ReplaceAllString(out, "$1$2$3"))
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		if _, err := exec.LookPath(save); err != nil {
			continue
		}
		out, err := output(prefix, save)
		if err != nil {
			return "", err
		}
		b.WriteString("# " + save + "\n")
		b.WriteString(iptablesState.ReplaceAllString(out, ""))
	}
	return b.String(), nil
}

func output(prefix []string, name string, args ...string) (string, error) {
	argv := append(append(append([]string{}, prefix...), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, stderr.String())
	}
	return string(out), nil
}

// hostFirewallVerdict compares the host's firewall after the suite with
// before (or reports why it could not be read) and returns the exit code
// it calls for.
func hostFirewallVerdict(before string, beforeErr error) (string, int) {
	unreadable := errors.Is(beforeErr, errNoNft) || errors.Is(beforeErr, errNotRoot)
	switch {
	case unreadable && requireAll:
		return "e2e: RAMPART_REQUIRE_ALL=1 but the host's firewall cannot be compared before and after the suite: " + beforeErr.Error(), 1
	case unreadable:
		return "e2e: the host's firewall was not compared before and after the suite: " + beforeErr.Error(), 0
	case beforeErr != nil:
		return "e2e: read the host's firewall before the suite: " + beforeErr.Error(), 1
	}
	after, err := firewallDump()
	if err != nil {
		return "e2e: read the host's firewall after the suite: " + err.Error(), 1
	}
	if after != before {
		return "e2e: the suite changed the host's own firewall (- before, + after):\n" + lineDiff(before, after), 1
	}
	return "", 0
}

// checkHostFirewall fails t if the host's firewall is not the same when t
// ends as when it called checkHostFirewall.
func checkHostFirewall(t *testing.T) {
	t.Helper()
	before, err := firewallDump()
	if err != nil {
		t.Fatalf("read the host's firewall: %v", err)
	}
	t.Cleanup(func() {
		after, err := firewallDump()
		if err != nil {
			t.Errorf("read the host's firewall: %v", err)
		} else if after != before {
			t.Errorf("%s changed the host's own firewall (- before, + after):\n%s", t.Name(), lineDiff(before, after))
		}
	})
}

// lineDiff lists the lines of a missing from b ("-") and of b missing from
// a ("+"), each as often as it is missing: enough to see what a ruleset
// gained or lost.
func lineDiff(a, b string) string {
	count := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		count[l]--
	}
	var out strings.Builder
	for _, l := range strings.Split(a, "\n") {
		if count[l] > 0 {
			count[l]--
			out.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if count[l] < 0 {
			count[l]++
			out.WriteString("+ " + l + "\n")
		}
	}
	return out.String()
}
