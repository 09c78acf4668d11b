// Command rampart-soak drives real rampart binaries with many concurrent
// API clients, optionally kills one with SIGKILL mid-run, and then checks
// that every acknowledged write is in the database, that positions and
// generations have no gaps, and that each enforcer holds its compiled
// view. It talks only to 127.0.0.1, or to 127.0.0.1 inside network
// namespaces it creates itself.
//
//	make soak                        # the three runs below, figures in SOAK.md
//	rampart-soak                     # 200 clients, 60 s, one console, preview enforcer
//	rampart-soak -crash -netns       # the console enforcing in a namespace (root), killed and restarted mid-run
//	rampart-soak -consoles 2         # two consoles on one PostgreSQL, each enforcing its host in a
//	                                 # namespace, an agent given both; the one it follows killed mid-run (root)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rampart-fw/rampart/internal/pgcluster"
	"github.com/rampart-fw/rampart/store"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type config struct {
	bin      string
	clients  int
	duration time.Duration
	crash    bool
	netns    bool
	maxRules int
	consoles int
	report   string
}

func run() error {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "bin/rampart", "the rampart binary")
	flag.IntVar(&cfg.clients, "clients", 200, "concurrent API clients, each with its own group and server")
	flag.DurationVar(&cfg.duration, "duration", 60*time.Second, "how long the load runs")
	flag.BoolVar(&cfg.crash, "crash", false, "SIGKILL the server half-way and restart it")
	flag.BoolVar(&cfg.netns, "netns", false, "run serve with --enforcer nftables in a network namespace made for the run (root)")
	flag.IntVar(&cfg.maxRules, "max-rules", 40, "rules per group the clients keep at most")
	flag.IntVar(&cfg.consoles, "consoles", 1, "1, or 2: two serve on one PostgreSQL (a throwaway cluster), each enforcing its own host "+
		"in a namespace, the load split across them, an agent given both; the console the agent follows is killed half-way (root)")
	flag.StringVar(&cfg.report, "report", "", "append the run's figures to this Markdown file (SOAK.md)")
	flag.Parse()
	if cfg.consoles != 1 && cfg.consoles != 2 {
		return fmt.Errorf("-consoles %d: 1 or 2", cfg.consoles)
	}
	bin, err := filepath.Abs(cfg.bin)
	if err != nil {
		return err
	}
	cfg.bin = bin

	dir, err := os.MkdirTemp("", "rampart-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	h := &harness{cfg: cfg, dir: dir, db: filepath.Join(dir, "soak.db")}
	defer h.deleteNamespaces()
	if cfg.consoles == 2 {
		if h.pg, err = pgcluster.Start(pgcluster.Options{Durable: true}); err != nil {
			return fmt.Errorf("PostgreSQL: %w", err)
		}
		defer h.pg.Stop()
		if err := h.pg.CreateDatabase(context.Background(), "soak"); err != nil {
			return err
		}
		h.db = h.pg.URL("soak", "")
	}
	tok, err := exec.Command(cfg.bin, "token", "create", "--db", h.db, "--org", "soak").Output()
	if err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	var t struct {
		Secret string `json:"secret_key"`
		Org    string `json:"organization_id"`
	}
	if err := json.Unmarshal(tok, &t); err != nil {
		return err
	}
	h.secret, h.org = t.Secret, t.Org
	if cfg.consoles == 2 {
		err = h.setUpConsoles()
	} else {
		err = h.setUpConsole()
	}
	defer func() {
		if h.agent != nil {
			h.agent.stop()
		}
		for _, c := range h.consoles {
			c.stop()
		}
	}()
	if err != nil {
		return err
	}

	clients, err := h.setUp()
	if err != nil {
		return err
	}
	var probe string // the group the failover's change goes to
	if h.agent != nil {
		if probe, err = h.agent.waitUp(h); err != nil {
			return err
		}
	}
	db, err := store.Open(context.Background(), h.db, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	startGen, err := db.Generation(context.Background())
	if err != nil {
		return err
	}
	fmt.Printf("soak: %d clients, %s, %s\n", cfg.clients, cfg.duration, h.mode())

	st := &stats{}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()
	var fo *failover
	var foErr error
	var foDone sync.WaitGroup
	switch {
	case h.agent != nil:
		foDone.Go(func() { fo, foErr = h.failover(ctx, db, probe) })
	case cfg.crash:
		c := h.consoles[0]
		foDone.Go(func() {
			select {
			case <-time.After(cfg.duration / 2):
			case <-ctx.Done():
				return
			}
			c.kill()
			fmt.Println("soak: server killed with SIGKILL; restarting")
			if err := c.start(); err != nil {
				foErr = fmt.Errorf("restart: %w", err)
				cancel()
			}
		})
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.loop(ctx, h, st) })
	}
	wg.Wait()
	foDone.Wait()
	l := st.summary(time.Since(start))
	if foErr != nil {
		return foErr
	}

	// After a crash some requests were cut: their outcome is unknown until
	// the database is read back.
	for _, c := range h.consoles {
		if err := c.waitHealthy(30 * time.Second); err != nil {
			return err
		}
	}
	var failures []string
	if n := st.serverErrors.Load(); n > 0 {
		failures = append(failures, fmt.Sprintf("%d answers were 5xx", n))
	}
	resolved := 0
	for _, c := range clients {
		if err := c.verify(h); err != nil {
			failures = append(failures, err.Error())
		}
		resolved += c.resolved
	}
	checks := &checks{clients: len(clients), resolved: resolved, startGen: startGen}
	if h.agent != nil {
		err = h.verifyKernels(ctx, db, clients, probe, checks)
	} else {
		err = h.verifyEnforcer(clients, checks)
	}
	if err != nil {
		failures = append(failures, err.Error())
	}
	for _, c := range h.consoles {
		c.stop()
	}
	if err := h.verifyGenerations(checks); err != nil {
		failures = append(failures, err.Error())
	}
	if err := verifyIntegrity(db); err != nil {
		failures = append(failures, err.Error())
	}
	if len(failures) > 0 {
		if len(failures) > 20 {
			failures = append(failures[:20], fmt.Sprintf("... and %d more", len(failures)-20))
		}
		return fmt.Errorf("%d checks failed:\n  %s", len(failures), strings.Join(failures, "\n  "))
	}
	fmt.Println("soak: every acknowledged write is in the database, positions are 1..N, generations have no gap, the enforcers hold their views")
	if cfg.report != "" {
		if err := h.writeReport(cfg.report, l, fo, checks); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	return nil
}

func (h *harness) mode() string {
	switch {
	case h.agent != nil:
		return fmt.Sprintf("%d consoles on one PostgreSQL, each enforcing its host in a namespace, an agent following them, the one it follows killed with SIGKILL half-way", len(h.consoles))
	case h.cfg.netns && h.cfg.crash:
		return "one console enforcing with nftables in a namespace, killed with SIGKILL half-way and restarted"
	case h.cfg.netns:
		return "one console enforcing with nftables in a namespace"
	case h.cfg.crash:
		return "one console (preview enforcer), killed with SIGKILL half-way and restarted"
	}
	return "one console (preview enforcer)"
}

// setUpConsole starts today's single console: preview, or nftables in a
// namespace with -netns.
func (h *harness) setUpConsole() error {
	var ns *nsDialer
	if h.cfg.netns {
		var err error
		if ns, err = h.newNamespace("serve"); err != nil {
			return fmt.Errorf("-netns: %w", err)
		}
	}
	c, err := h.newConsole("A", ns, "")
	if err != nil {
		return err
	}
	return c.start()
}

// verifyIntegrity checks the database's storage.
func verifyIntegrity(db *store.DB) error {
	res, err := db.IntegrityCheck(context.Background())
	if err != nil {
		return err
	}
	if res != "ok" {
		return fmt.Errorf("integrity check: %s", res)
	}
	fmt.Printf("soak: integrity check (%s): ok\n", db.Engine())
	return nil
}
