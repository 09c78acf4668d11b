// Command benchreport runs Rampart's benchmarks side by side with the
// alternatives and writes BENCHMARKS.md. `make bench` runs it after the Go
// benchmarks of the enforcer, whose output it includes (-gobench).
//
// The enforcer and datapath sections need root: they create network
// namespaces, and touch nothing outside them.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-fw/rampart/bench"
	"github.com/rampart-fw/rampart/internal/pgcluster"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

type config struct {
	out, goBench, goBenchCmd, bin string
	runs                          int
	quick                         bool
	postgres                      bool
	sections                      map[string]bool
	command                       string
}

// allSections are the parts of the report, in the order they run.
const allSections = "enforcer,store,commit,datapath,api,console,put,fleet,binary"

// pgSections compare the store's engines: PostgreSQL beside SQLite.
var pgSections = []string{"api", "put", "commit"}

// The stores the web and binary benchmarks serve: groups of rules each
// (the binary's and the PUT's with as many servers as groups).
var (
	webScale    = bench.Scale{Groups: 1000, Rules: 10}
	loadedScale = bench.Scale{Servers: 1000, Groups: 1000, Rules: 10}
)

func run(ctx context.Context, args []string, logw io.Writer) error {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	var c config
	fs.StringVar(&c.out, "out", "BENCHMARKS.md", "report to write")
	fs.StringVar(&c.goBench, "gobench", "", "output of `go test -bench` to include")
	fs.StringVar(&c.goBenchCmd, "gobench-cmd", "", "the command that wrote -gobench, as printed in the report")
	fs.StringVar(&c.bin, "bin", "bin/rampart", "the built binary (make build)")
	fs.IntVar(&c.runs, "runs", 5, "runs of each measurement; figures are their median")
	fs.BoolVar(&c.quick, "quick", false, "smallest matrix and short runs, to check the harness")
	fs.BoolVar(&c.postgres, "postgres", true, "measure the api, put and commit sections on PostgreSQL too (a throwaway cluster this run starts)")
	sections := fs.String("sections", allSections, "sections to run, comma-separated: "+allSections)
	fs.StringVar(&c.command, "command", "make bench", "the command that reproduces the report, as printed in it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.runs < 1 {
		return fmt.Errorf("-runs %d: need at least one run", c.runs)
	}
	c.sections = map[string]bool{}
	for _, s := range strings.Split(*sections, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(strings.Split(allSections, ","), s) {
			return fmt.Errorf("-sections: unknown section %q (known: %s)", s, allSections)
		}
		c.sections[s] = true
	}
	tmp, err := os.MkdirTemp("", "rampart-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logf := func(format string, a ...any) { fmt.Fprintf(logw, "benchreport: "+format+"\n", a...) }

	r := &report{cfg: c, start: time.Now(), machine: describeMachine()}
	if c.goBench != "" {
		b, err := os.ReadFile(c.goBench)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "FAIL") || strings.HasPrefix(l, "--- FAIL") || strings.HasPrefix(l, "panic:") {
				return fmt.Errorf("the Go benchmarks failed (%s): %s", c.goBench, l)
			}
		}
		if r.goBench = parseGoBench(string(b)); len(r.goBench) == 0 {
			return fmt.Errorf("%s holds no benchmark result", c.goBench)
		}
	}
	root := os.Geteuid() == 0
	matrix := fullMatrix()
	if c.quick {
		matrix = []bench.Scale{{Servers: 10, Groups: 20, Rules: 10}, {Servers: 1000, Groups: 200, Rules: 50}}
	}
	dur := 2 * time.Second
	if c.quick {
		dur = 500 * time.Millisecond
	}
	mkdir := func(name string) (string, error) {
		dir, err := os.MkdirTemp(tmp, name)
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return dir, nil
	}
	needRoot := func(section string) bool {
		if c.sections[section] && !root {
			r.skipped = append(r.skipped, section)
			return false
		}
		return c.sections[section]
	}

	// The engines the api, put and commit sections compare: SQLite, and
	// PostgreSQL in a cluster of this run, durable as in production.
	engines := []bench.Engine{bench.SQLite(filepath.Join(tmp, "engines"))}
	if slices.ContainsFunc(pgSections, func(s string) bool { return c.sections[s] }) {
		if !c.postgres {
			r.noPostgres = "not asked for (-postgres=false)"
		} else {
			pg, err := pgcluster.Start(pgcluster.Options{Durable: true})
			if err != nil {
				r.noPostgres = err.Error()
				logf("PostgreSQL: %v; the engines are measured on SQLite alone", err)
			} else {
				defer pg.Stop()
				v, err := pg.Version(ctx)
				if err != nil {
					return fmt.Errorf("PostgreSQL: %w", err)
				}
				engines = append(engines, bench.Postgres(pg, v))
			}
		}
	}
	r.engines = engines

	if needRoot("enforcer") {
		for _, sc := range matrix {
			logf("enforcer apply: %s", sc)
			dir, err := mkdir("apply")
			if err != nil {
				return err
			}
			res, err := bench.MeasureApply(ctx, sc, c.runs, 30, dir)
			if err != nil {
				return fmt.Errorf("enforcer %s: %w", sc, err)
			}
			r.apply = append(r.apply, res)
		}
	}
	if needRoot("store") {
		for _, sc := range matrix {
			logf("store to kernel: %s", sc)
			dir, err := mkdir("store")
			if err != nil {
				return err
			}
			res, err := bench.MeasureStoreApply(ctx, sc, 15, dir)
			if err != nil {
				return fmt.Errorf("store to kernel %s: %w", sc, err)
			}
			r.store = append(r.store, res)
		}
	}
	if needRoot("commit") {
		sc := matrix[len(matrix)-1]
		logf("commit to kernel on %s, beside nft -f: %s", joinEngines(engines), sc)
		dir, err := mkdir("commit")
		if err != nil {
			return err
		}
		res, err := bench.MeasureCommit(ctx, sc, engines, max(20, 3*c.runs), dir)
		if err != nil {
			return fmt.Errorf("commit to kernel: %w", err)
		}
		r.commit = &res
	}
	if needRoot("datapath") {
		logf("datapath")
		cfgs := []bench.DatapathConfig{
			{Name: "no ruleset", Servers: 1, Kind: "none"},
			{Name: "Rampart (nftables, verdict maps)", Servers: 1, Kind: "nftables"},
			{Name: "Rampart (nftables, verdict maps)", Servers: 5000, Kind: "nftables"},
			{Name: "iptables, linear dispatch", Servers: 1, Kind: "iptables"},
			{Name: "iptables, linear dispatch", Servers: 5000, Kind: "iptables"},
		}
		dir, err := mkdir("dp")
		if err != nil {
			return err
		}
		res, err := bench.MeasureDatapath(ctx, cfgs, c.runs, 4, dur, dir)
		if err != nil {
			return fmt.Errorf("datapath: %w", err)
		}
		r.datapath = &res
	}
	if c.sections["api"] || c.sections["console"] {
		logf("web: filling a store with %s", webScale)
		dir, err := mkdir("web")
		if err != nil {
			return err
		}
		env, err := bench.NewWebEnv(ctx, dir, webScale.Groups, webScale.Rules)
		if err != nil {
			return fmt.Errorf("web: %w", err)
		}
		err = measureWeb(ctx, r, env, engines, c, dur, logf)
		env.Close()
		if err != nil {
			return err
		}
	}
	if needRoot("put") {
		logf("PUT with nftables on %s: %s", joinEngines(engines), c.bin)
		dir, err := mkdir("put")
		if err != nil {
			return err
		}
		res, err := bench.MeasurePut(ctx, c.bin, dir, loadedScale, engines, c.runs, 8, 25, dur)
		if err != nil {
			return fmt.Errorf("PUT with nftables: %w", err)
		}
		r.put = &res
	}
	if needRoot("fleet") {
		cfg := bench.FleetConfig{Bin: c.bin, Agents: 50, SharedRules: 20, OwnRules: 10, Changes: 25, Idle: 10 * time.Second, Settle: 3 * time.Second}
		if c.quick {
			cfg.Changes, cfg.Idle, cfg.Settle = 8, 2*time.Second, time.Second
		}
		logf("fleet: a console and %d agents", cfg.Agents)
		dir, err := mkdir("fleet")
		if err != nil {
			return err
		}
		res, err := bench.MeasureFleet(ctx, cfg, dir)
		if err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
		r.fleet = &res
	}
	if c.sections["binary"] {
		logf("binary: %s", c.bin)
		secret, zone, err := buildDBs(ctx, tmp)
		if err != nil {
			return err
		}
		res, err := bench.MeasureBinary(c.bin, filepath.Join(tmp, "empty", "rampart.db"), filepath.Join(tmp, "loaded", "rampart.db"),
			loadedScale, zone, secret, 10, 5, 3*time.Second)
		if err != nil {
			return fmt.Errorf("binary: %w", err)
		}
		r.binary = &res
	}
	r.end = time.Now()
	r.loadEnd = loadAvg()
	var sb strings.Builder
	r.write(&sb)
	if err := os.WriteFile(c.out, []byte(sb.String()), 0o644); err != nil {
		return err
	}
	logf("wrote %s in %s", c.out, r.end.Sub(r.start).Round(time.Second))
	return nil
}

func joinEngines(engines []bench.Engine) string {
	names := make([]string, len(engines))
	for i, e := range engines {
		names[i] = e.Name
	}
	return strings.Join(names, " and ")
}

// measureWeb runs the API and console sections on env. An error of either
// ends the report: a section is measured or the report is not written.
func measureWeb(ctx context.Context, r *report, env *bench.WebEnv, engines []bench.Engine, c config, dur time.Duration, logf func(string, ...any)) error {
	if c.sections["console"] {
		logf("console")
		res, err := bench.MeasureConsole(ctx, env, max(25, c.runs))
		if err != nil {
			return fmt.Errorf("console: %w", err)
		}
		r.console = &res
	}
	if c.sections["api"] {
		envs := []*bench.WebEnv{env}
		defer func() {
			for _, e := range envs[1:] {
				e.Close()
			}
		}()
		for _, e := range engines[1:] {
			logf("web: the same store copied to %s", e.Name)
			cp, err := env.CopyTo(ctx, e)
			if err != nil {
				return fmt.Errorf("api: %w", err)
			}
			envs = append(envs, cp)
		}
		logf("api on %s", joinEngines(engines))
		res, err := bench.MeasureAPI(ctx, envs, c.runs, 8, dur)
		if err != nil {
			return fmt.Errorf("api: %w", err)
		}
		r.api = &res
	}
	return nil
}

// fullMatrix is the cross product of the scale points: 10, 100 and 1,000
// servers; 20 and 200 groups; 10 and 50 rules per group.
func fullMatrix() []bench.Scale {
	var m []bench.Scale
	for _, g := range []int{20, 200} {
		for _, r := range []int{10, 50} {
			for _, s := range []int{10, 100, 1000} {
				m = append(m, bench.Scale{Servers: s, Groups: g, Rules: r})
			}
		}
	}
	return m
}

// buildDBs makes the databases the binary starts on: empty/ (migrated,
// no group) and loaded/ (at loadedScale). It returns an API token of the
// loaded one and its zone.
func buildDBs(ctx context.Context, tmp string) (secret, zone string, err error) {
	for _, d := range []struct {
		name string
		sc   bench.Scale
	}{{"empty", bench.Scale{}}, {"loaded", loadedScale}} {
		dir := filepath.Join(tmp, d.name)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return "", "", err
		}
		ds, err := bench.Populate(ctx, filepath.Join(dir, "rampart.db"), d.sc)
		if err != nil {
			return "", "", fmt.Errorf("database %s: %w", d.name, err)
		}
		secret, zone = ds.Secret, ds.Zone
		if err := ds.DB.Close(); err != nil {
			return "", "", fmt.Errorf("database %s: %w", d.name, err)
		}
	}
	return secret, zone, nil
}

type machine struct {
	nproc                 int
	cpu, kernel, goVer    string
	mem                   string
	nft, iptables, loadAt string
}

func describeMachine() machine {
	m := machine{nproc: runtime.NumCPU(), goVer: runtime.Version(), loadAt: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				m.mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	m.nft = cmdLine("nft", "--version")
	m.iptables = cmdLine("iptables", "-V")
	return m
}

func cmdLine(args ...string) string {
	out, err := exec.Command(args[0], args[1:]...).Output()
	if err != nil {
		return "not installed"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// goBenchResult is one benchmark of `go test -bench`, over its -count runs.
type goBenchResult struct {
	name  string
	nsOps []float64
	// metrics are the benchmark's own (b.ReportMetric: kernel-ms,
	// conn/s-100k, ratio...), in the order it reports them.
	metrics []goMetric
}

// goMetric is one metric of a benchmark over its runs.
type goMetric struct {
	unit string
	vals []float64
}

func parseGoBench(s string) []goBenchResult {
	var out []goBenchResult
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || f[3] != "ns/op" {
			continue
		}
		ns, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		i := slices.IndexFunc(out, func(r goBenchResult) bool { return r.name == name })
		if i < 0 {
			out = append(out, goBenchResult{name: name})
			i = len(out) - 1
		}
		out[i].nsOps = append(out[i].nsOps, ns)
		for k := 4; k+1 < len(f); k += 2 {
			unit := f[k+1]
			v, err := strconv.ParseFloat(f[k], 64)
			if err != nil || unit == "B/op" || unit == "allocs/op" || unit == "MB/s" {
				continue
			}
			j := slices.IndexFunc(out[i].metrics, func(m goMetric) bool { return m.unit == unit })
			if j < 0 {
				out[i].metrics = append(out[i].metrics, goMetric{unit: unit})
				j = len(out[i].metrics) - 1
			}
			out[i].metrics[j].vals = append(out[i].metrics[j].vals, v)
		}
	}
	return out
}
