package bench

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/rampart-fw/rampart/internal/netnstest"
	"github.com/vishvananda/netns"
)

// NS is a network namespace made for a benchmark.
type NS struct {
	Name string
	H    netns.NsHandle
}

// NewNS creates a network namespace with a unique name and loopback up.
// Close deletes it.
func NewNS(role string) (*NS, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "rbn" + hex.EncodeToString(b[:]) + role
	if err := run("ip", "netns", "add", name); err != nil {
		return nil, err
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		_ = run("ip", "netns", "del", name)
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	ns := &NS{Name: name, H: h}
	if err := ns.Run("ip", "link", "set", "lo", "up"); err != nil {
		ns.Close()
		return nil, err
	}
	return ns, nil
}

// Close deletes the namespace.
func (ns *NS) Close() error {
	_ = ns.H.Close()
	return run("ip", "netns", "del", ns.Name)
}

// FD returns the namespace's file descriptor, for enforcer.WithNetNS.
func (ns *NS) FD() int { return int(ns.H) }

// Run runs a command inside the namespace (through `ip netns exec`).
func (ns *NS) Run(args ...string) error {
	return run(append([]string{"ip", "netns", "exec", ns.Name}, args...)...)
}

// Exec runs a command inside the namespace without `ip netns exec`: it is
// forked from a thread switched into the namespace, so that a measurement
// of the command does not include ip's own start. stdin may be nil.
func (ns *NS) Exec(stdin io.Reader, args ...string) error {
	_, err := InNS(ns, func() (struct{}, error) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin = stdin
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return struct{}{}, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, firstLines(out.String(), 5))
		}
		return struct{}{}, nil
	})
	return err
}

// Output runs a command inside the namespace as Exec does and returns
// its standard output.
func (ns *NS) Output(args ...string) ([]byte, error) {
	return InNS(ns, func() ([]byte, error) {
		cmd := exec.Command(args[0], args[1:]...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, firstLines(stderr.String(), 5))
		}
		return out, nil
	})
}

// InNS runs f on an OS thread switched into ns and returns its result;
// sockets made by f stay in ns.
func InNS[T any](ns *NS, f func() (T, error)) (T, error) {
	return netnstest.InNS(ns.H, f)
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, firstLines(string(out), 5))
	}
	return nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, "\n")
}
