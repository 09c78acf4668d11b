//go:build linux

package enforcer

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// counterRe matches the counts of an anonymous counter or of a counter
// object.
var counterRe = regexp.MustCompile(`(counter )?packets \d+ bytes \d+`)

// normalise drops what legitimately differs between two loads of the same
// ruleset: counter values and the handle comments of `nft -a`.
func normalise(s string) string {
	s = counterRe.ReplaceAllString(s, "counter")
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestPreviewTextMatchesNetlink proves that the preview text is valid nft
// (nft -c -f accepts it) and that, loaded with nft -f, the kernel holds the
// same rules as after a netlink apply of the same snapshot.
func TestPreviewTextMatchesNetlink(t *testing.T) {
	requireRoot(t)
	rs := richRuleset()
	if len(rs.Errors) > 0 {
		t.Fatalf("compile errors: %v", rs.Errors)
	}

	nsNetlink, h := newNS(t, "nl")
	b, err := NewNFTables(WithNetNS(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(context.Background(), nil, rs); err != nil {
		t.Fatalf("netlink apply: %v", err)
	}

	nsText, _ := newNS(t, "tx")
	file := filepath.Join(t.TempDir(), "rampart.nft")
	if err := os.WriteFile(file, []byte(rs.Text()), 0o600); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "ip", "netns", "exec", nsText, "nft", "-c", "-f", file)
	if tableExists(nsText) {
		t.Fatal("nft -c created the table")
	}
	runCmd(t, "ip", "netns", "exec", nsText, "nft", "-f", file)

	got, want := normalise(listTable(t, nsNetlink)), normalise(listTable(t, nsText))
	if got != want {
		t.Errorf("netlink apply and preview text differ\n--- netlink:\n%s\n--- preview:\n%s\n--- text:\n%s", got, want, rs.Text())
	}
	// Loading the text again replaces the table atomically.
	runCmd(t, "ip", "netns", "exec", nsText, "nft", "-f", file)
	if again := normalise(listTable(t, nsText)); again != want {
		t.Errorf("second load differs:\n%s", again)
	}
}
