//go:build linux

// Package netnstest gives tests network namespaces of their own: created
// for a test, deleted when it ends, entered from a locked OS thread. It is
// for tests only; tests that use it need root, ip and nft, and skip
// without them, or fail when RAMPART_REQUIRE_ALL=1 so that a kernel test
// never silently vanishes from CI.
package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

// RequireRoot skips a test that needs root, nft and ip, or fails it when
// RAMPART_REQUIRE_ALL=1.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	var why string
	switch {
	case os.Geteuid() != 0:
		why = "needs root (network namespaces, nftables)"
	default:
		for _, bin := range []string{"ip", "nft"} {
			if _, err := exec.LookPath(bin); err != nil {
				why = "needs the " + bin + " binary"
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("RAMPART_REQUIRE_ALL") == "1" {
		tb.Fatalf("RAMPART_REQUIRE_ALL=1: %s", why)
	}
	tb.Skip(why)
}

// Run runs a command and returns its combined output; it fails the test
// when the command fails.
func Run(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NewNS creates a network namespace with a unique name ending in role,
// deleted when the test ends (failed or not), with its loopback up and
// duplicate address detection off, and returns its name and a handle.
func NewNS(tb testing.TB, role string) (string, netns.NsHandle) {
	tb.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "rpt" + hex.EncodeToString(b[:]) + role
	Run(tb, "ip", "netns", "add", name)
	h, err := netns.GetFromName(name)
	if err != nil {
		_ = exec.Command("ip", "netns", "del", name).Run()
		tb.Fatalf("open netns %s: %v", name, err)
	}
	tb.Cleanup(func() {
		_ = h.Close()
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("delete netns %s: %v %s", name, err, out)
		}
	})
	Run(tb, "ip", "-n", name, "link", "set", "lo", "up")
	// No duplicate address detection: addresses (link-local included) are
	// usable at once, so that the first IPv6 packet does not race DAD.
	Run(tb, "ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return name, h
}

// InNS runs f on an OS thread switched into namespace h. Sockets made by f
// stay in h after f returns. The thread is never switched back: it exits
// with the goroutine, locked, and the runtime discards it.
func InNS[T any](h netns.NsHandle, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(h); err != nil {
			var zero T
			ch <- result{zero, fmt.Errorf("setns: %w", err)}
			return
		}
		v, err := f()
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}

// Interface returns the interface called name in namespace h.
func Interface(h netns.NsHandle, name string) (*net.Interface, error) {
	return InNS(h, func() (*net.Interface, error) { return net.InterfaceByName(name) })
}
