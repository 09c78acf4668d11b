package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// BinaryResults are the figures of bin/rampart.
type BinaryResults struct {
	Size         int64
	StartEmpty   Sample // exec until /healthz 200, empty database, preview
	StartLoaded  Sample // same with 1,000 groups
	StartNFT     Sample // 1,000 groups, nftables enforcer in a namespace
	RSS          []int64
	RSSAfterLoad []int64 // kB, after reading every group through the API and settling
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// serveProc is one running `rampart serve`.
type serveProc struct {
	cmd  *exec.Cmd
	addr string
}

func (p *serveProc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// startServe starts bin in ns (nil: here) and waits for /healthz 200; it
// returns the time from exec to that answer.
func startServe(bin, db, mode string, ns *NS) (*serveProc, time.Duration, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, 0, err
	}
	args := []string{bin, "serve", "--listen", addr, "--db", db, "--enforcer", mode}
	if ns != nil {
		args = append([]string{"ip", "netns", "exec", ns.Name}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	dial := (&net.Dialer{}).DialContext
	if ns != nil {
		dial = func(ctx context.Context, network, a string) (net.Conn, error) {
			return InNS(ns, func() (net.Conn, error) { return net.DialTimeout(network, a, time.Second) })
		}
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	p := &serveProc{cmd: cmd, addr: addr}
	for {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, time.Since(t0), nil
			}
		}
		if time.Since(t0) > 30*time.Second {
			p.stop()
			return nil, 0, fmt.Errorf("%s: no /healthz 200 after 30 s (%v)", strings.Join(args, " "), err)
		}
		time.Sleep(time.Millisecond)
	}
}

// vmRSS reads VmRSS (kB) of pid.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// MeasureBinary starts bin n times in each setting; emptyDB is a database
// with no group, loadedDB one with 1,000; secret is an API token of loadedDB.
func MeasureBinary(bin, emptyDB, loadedDB, secret string, n int, settle time.Duration) (BinaryResults, error) {
	var res BinaryResults
	st, err := os.Stat(bin)
	if err != nil {
		return res, err
	}
	res.Size = st.Size()
	for i := 0; i < n; i++ {
		p, d, err := startServe(bin, emptyDB, "preview", nil)
		if err != nil {
			return res, err
		}
		p.stop()
		res.StartEmpty = append(res.StartEmpty, d)

		p, d, err = startServe(bin, loadedDB, "preview", nil)
		if err != nil {
			return res, err
		}
		res.StartLoaded = append(res.StartLoaded, d)
		if i < 5 {
			// Idle memory: after start, and after reading every group.
			time.Sleep(settle)
			kb, err := vmRSS(p.cmd.Process.Pid)
			if err != nil {
				p.stop()
				return res, err
			}
			res.RSS = append(res.RSS, kb)
			for page := 1; page <= 10; page++ {
				req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/instance/v1/zones/fr-par-1/security_groups?per_page=100&page=%d", p.addr, page), nil)
				req.Header.Set("X-Auth-Token", secret)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					p.stop()
					return res, err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			time.Sleep(settle)
			if kb, err = vmRSS(p.cmd.Process.Pid); err != nil {
				p.stop()
				return res, err
			}
			res.RSSAfterLoad = append(res.RSSAfterLoad, kb)
		}
		p.stop()
	}
	if os.Geteuid() != 0 {
		return res, nil
	}
	ns, err := NewNS("bin")
	if err != nil {
		return res, err
	}
	defer ns.Close()
	for i := 0; i < n; i++ {
		p, d, err := startServe(bin, loadedDB, "nftables", ns)
		if err != nil {
			return res, err
		}
		p.stop()
		res.StartNFT = append(res.StartNFT, d)
	}
	return res, nil
}
