// Command rampart serves the Rampart console and API, enforces security
// groups with nftables, and manages users and tokens.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/fleet"
	"github.com/rampart-fw/rampart/packetlog"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "rampart:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage:
  rampart serve [--listen 127.0.0.1:8080] [--db data/rampart.db|postgres://…] [--zones fr-par-1,nl-ams-1] [--enforcer auto|nftables|preview]
                [--host-name NAME] [--agent-listen ADDR] [--agent-names NAMES] [--lost-after 30s] [--join-token-ttl 1h] [--cert-lifetime 720h]
                [--secure-cookies] [--trusted-proxies CIDRS] [--log-file PATH] [--log-rate 50] [--log-burst 100]
  rampart agent --console URL[,URL2…] --join-token TOKEN --state-dir DIR [--log-rate 50] [--log-burst 100]   (later runs: --state-dir DIR alone)
  rampart host add --db PATH|URL --name NAME [--join-token-ttl 1h]   (prints {"host_id","name","join_token"})
  rampart host token --db PATH|URL --name NAME [--join-token-ttl 1h] (a new join token for a host)
  rampart host remove --db PATH|URL --name NAME
  rampart token create --db PATH|URL [--org NAME]
  rampart user create --db PATH|URL --email E [--org NAME] [--operator]   (password read from standard input)
  rampart grant --db PATH|URL --org NAME [--host NAME] --interfaces 'tap-acme-*,vnet1*' [--local]
  rampart db copy --from PATH --to postgres://…             (moves a SQLite install into an empty PostgreSQL database, then compares them)
  rampart db backup --db PATH --to FILE                      (a consistent copy of a SQLite database; PostgreSQL: pg_dump)
  rampart enforcer remove                                     (deletes the inet rampart table)
  rampart version

--db (env RAMPART_DB) is a SQLite file, created if missing, or a postgres:// URL.
`

// run is the whole program; main only supplies the process's context,
// arguments and streams, so that tests can run it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "token":
		if len(rest) == 0 || rest[0] != "create" {
			return errors.New("usage: rampart token create --db PATH [--org NAME]")
		}
		return runTokenCreate(ctx, rest[1:], stdout, stderr)
	case "user":
		if len(rest) == 0 || rest[0] != "create" {
			return errors.New("usage: rampart user create --db PATH --email E [--org NAME]")
		}
		return runUserCreate(ctx, rest[1:], stdin, stdout, stderr)
	case "grant":
		return runGrant(ctx, rest, stdout, stderr)
	case "db":
		switch {
		case len(rest) > 0 && rest[0] == "copy":
			return runDBCopy(ctx, rest[1:], stdout, stderr)
		case len(rest) > 0 && rest[0] == "backup":
			return runDBBackup(ctx, rest[1:], stdout, stderr)
		}
		return errors.New("usage: rampart db copy --from PATH --to postgres://… | rampart db backup --db PATH --to FILE")
	case "agent":
		return runAgent(ctx, rest, stdout, stderr)
	case "host":
		return runHost(ctx, rest, stdout, stderr)
	case "enforcer":
		if len(rest) == 0 || rest[0] != "remove" {
			return errors.New("usage: rampart enforcer remove")
		}
		if err := enforcer.Remove(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "removed table inet rampart")
		return nil
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "rampart", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// dbUsage describes --db, which every command that opens the store takes.
const dbUsage = "SQLite database file, or postgres:// URL (env RAMPART_DB)"

// redact hides the password of a postgres:// URL, for logs.
func redact(dsn string) string {
	if !store.IsPostgres(dsn) {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://…"
	}
	return u.Redacted()
}

// openExisting opens a store that must exist already: a SQLite file that
// is missing is not created empty (Open would).
func openExisting(ctx context.Context, dsn string) (*store.DB, error) {
	if !store.IsPostgres(dsn) {
		if _, err := os.Stat(dsn); err != nil {
			return nil, err
		}
	}
	return store.Open(ctx, dsn, nil)
}

// runDBCopy moves a whole store into another, empty one (a SQLite install
// into PostgreSQL), then compares them row by row. Both are migrated to
// this release's schema first, the source too.
func runDBCopy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("db copy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the SQLite database file to copy (stop serve on it first)")
	to := fs.String("to", "", "the postgres:// URL of the database to copy into, where nothing was changed yet")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return errors.New("db copy: --from and --to are required")
	}
	src, err := openExisting(ctx, *from)
	if err != nil {
		return fmt.Errorf("db copy: %w", err)
	}
	defer src.Close()
	dst, err := store.Open(ctx, *to, nil)
	if err != nil {
		return fmt.Errorf("db copy: %w", err)
	}
	defer dst.Close()
	counts, err := store.Copy(ctx, src, dst)
	if err != nil {
		return err
	}
	if err := store.Compare(ctx, src, dst); err != nil {
		return fmt.Errorf("db copy: the copy does not compare equal: %w", err)
	}
	tables := make([]string, 0, len(counts))
	for t := range counts {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		fmt.Fprintf(stdout, "%-16s %d rows\n", t, counts[t])
	}
	fmt.Fprintf(stdout, "copied %s to %s (%s) and compared: every row equal\n", redact(*from), redact(*to), dst.Engine())
	return nil
}

// runDBBackup writes a consistent copy of a SQLite database, which may be
// in use, to a new file readable by its owner only.
func runDBBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("db backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", envOr("RAMPART_DB", ""), "the SQLite database file (env RAMPART_DB)")
	to := fs.String("to", "", "the backup file to create")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dbPath == "" || *to == "" {
		return errors.New("db backup: --db and --to are required")
	}
	if store.IsPostgres(*dbPath) {
		return errors.New("db backup: back up a PostgreSQL database with pg_dump (see the README)")
	}
	db, err := openExisting(ctx, *dbPath)
	if err != nil {
		return fmt.Errorf("db backup: %w", err)
	}
	defer db.Close()
	if err := db.Backup(ctx, *to); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s\n", *dbPath, *to)
	return nil
}

// envOr returns the environment variable's value, or def.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func splitZones(s string) []string {
	var zones []string
	for _, z := range strings.Split(s, ",") {
		if z = strings.TrimSpace(z); z != "" {
			zones = append(zones, z)
		}
	}
	return zones
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", envOr("RAMPART_LISTEN", "127.0.0.1:8080"), "address to listen on (env RAMPART_LISTEN)")
	dbPath := fs.String("db", envOr("RAMPART_DB", "data/rampart.db"), dbUsage)
	zonesFlag := fs.String("zones", envOr("RAMPART_ZONES", "fr-par-1,nl-ams-1"), "comma-separated zones, the first is the default (env RAMPART_ZONES)")
	mode := fs.String("enforcer", envOr("RAMPART_ENFORCER", "auto"), "auto, nftables or preview (env RAMPART_ENFORCER)")
	secure := fs.Bool("secure-cookies", envOr("RAMPART_SECURE_COOKIES", "") == "1" || envOr("RAMPART_SECURE_COOKIES", "") == "true",
		"mark the console's cookies Secure, when it is reached over HTTPS (env RAMPART_SECURE_COOKIES)")
	proxies := fs.String("trusted-proxies", envOr("RAMPART_TRUSTED_PROXIES", ""),
		"comma-separated CIDRs of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (env RAMPART_TRUSTED_PROXIES)")
	defaultHost, _ := os.Hostname()
	hostName := fs.String("host-name", envOr("RAMPART_HOST_NAME", defaultHost),
		"the name of this machine among the hosts: the console enforces the servers on it (env RAMPART_HOST_NAME)")
	agentListen := fs.String("agent-listen", envOr("RAMPART_AGENT_LISTEN", ""),
		"address of the agents' endpoint (TLS), off when empty (env RAMPART_AGENT_LISTEN)")
	agentNames := fs.String("agent-names", envOr("RAMPART_AGENT_NAMES", ""),
		"comma-separated names and addresses the agents reach the console by, for its certificate; default: the hostname and the listen address (env RAMPART_AGENT_NAMES)")
	var fl fleetFlags
	if err := fl.register(fs); err != nil {
		return err
	}
	var lf logFlags
	if err := lf.register(fs, true); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	logCfg, err := lf.config()
	if err != nil {
		return err
	}
	if !store.ValidHostName(*hostName) {
		return fmt.Errorf("--host-name %q: a host name is 1 to 63 letters, digits, '.', '_' or '-' (set --host-name)", *hostName)
	}
	trusted, err := parsePrefixes(*proxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	zones := splitZones(*zonesFlag)
	if err := web.CheckZones(zones); err != nil {
		return err
	}
	db, err := store.Open(ctx, *dbPath, zones)
	if err != nil {
		return err
	}
	defer db.Close()

	host, err := db.EnsureHost(ctx, *hostName)
	if err != nil {
		return err
	}
	backend, err := enforcer.Open(*mode)
	if err != nil {
		return err
	}
	if m, why := backend.Mode(); m != enforcer.ModeNFTables {
		logger.Warn("not enforcing: rules are computed and shown, not applied to the kernel", "mode", m, "reason", why)
	} else {
		logger.Info("enforcing with nftables", "table", "inet rampart", "host", host.Name)
	}
	// This machine enforces its own host's servers; agents the others'.
	// Its packet log is read when it enforces with nftables.
	var onLog func([]store.LogEntry)
	if lf.file != "" {
		f, err := openLogFile(lf.file, logger)
		if err != nil {
			return err
		}
		defer f.Close()
		onLog = f.write
	}
	console, err := fleet.New(ctx, fleet.Config{Store: db, Host: host, Backend: backend, Logger: logger, Version: version,
		LostAfter: fl.lostAfter, JoinTokenTTL: fl.tokenTTL, CertLifetime: fl.certLifetime,
		PacketLog: &packetlog.Config{}, OnLog: onLog})
	if err != nil {
		return err
	}
	console.Reconciler().SetLogConfig(logCfg)
	var agentLn net.Listener
	if *agentListen != "" {
		if agentLn, err = net.Listen("tcp", *agentListen); err != nil {
			return fmt.Errorf("agent listen: %w", err)
		}
	}

	srv, err := web.New(web.Config{Store: db, Enforcer: console, Logger: logger, Version: version,
		SecureCookies: *secure, TrustedProxies: trusted,
		Fleet: console, JoinToken: console.JoinToken, JoinTokenTTL: fl.tokenTTL})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	logger.Info("listening", "addr", "http://"+ln.Addr().String(), "db", redact(*dbPath), "zones", zones)
	if n, err := db.CountUsers(ctx); err == nil && n == 0 {
		logger.Info("no console user yet: create one with `rampart user create --db " + redact(*dbPath) + " --email you@example.com` (password on standard input)")
	}

	recCtx, stopRec := context.WithCancel(context.Background())
	recDone := make(chan error, 1)
	go func() { recDone <- console.Run(recCtx) }()
	// Starting reads and compiles the whole store: garbage the heap keeps
	// (and the process's RSS with it) long after. Once the first apply is
	// done, the rows that snapshot could not read are reported and the
	// garbage goes back to the system at once.
	go func() {
		select {
		case <-console.Ready():
			reportUnreadable(console.Unreadable(), logger)
			debug.FreeOSMemory()
		case <-recCtx.Done():
		}
	}()
	var agentsDone chan error // nil, which never answers, without agents
	if agentLn != nil {
		agentsDone = make(chan error, 1)
		names := splitZones(*agentNames)
		if len(names) == 0 {
			names = fleet.ServerNames(agentLn.Addr().String())
		}
		logger.Info("agents' endpoint", "addr", "https://"+agentLn.Addr().String(), "names", names, "ca_pin", console.CA().Pin())
		go func() { agentsDone <- console.ServeAgents(recCtx, agentLn, names) }()
	}
	waitAgents := func() {
		if agentsDone != nil {
			<-agentsDone
		}
	}
	// Changes left unconfirmed are rolled back by the server itself, also
	// those whose deadline passed while it was stopped.
	rollDone := make(chan struct{})
	go func() {
		defer close(rollDone)
		db.RunRollBacks(recCtx, func(n int, err error) {
			if err != nil {
				logger.Error("roll back unconfirmed changes", "err", err)
			} else {
				logger.Info("rolled back unconfirmed changes", "count", n)
			}
		})
	}()

	httpSrv := srv.HTTPServer()
	httpSrv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopRec()
		<-recDone
		waitAgents()
		<-rollDone
		return fmt.Errorf("serve: %w", err)
	case err := <-agentsDone:
		httpSrv.Close()
		stopRec()
		<-recDone
		return err
	}
	logger.Info("shutting down; the nftables ruleset stays in place (remove it with `rampart enforcer remove`)")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = httpSrv.Shutdown(shutCtx)
	stopRec()
	<-recDone
	waitAgents()
	<-rollDone
	return err
}

// reportUnreadable logs the stored rows that the store could not read as
// valid (unreadable, by group): their groups fail closed until they are
// fixed.
func reportUnreadable(unreadable map[string][]string, logger *slog.Logger) {
	for gid, rows := range unreadable {
		for _, row := range rows {
			logger.Warn("stored row cannot be read; its group fails closed until it is fixed", "group", gid, "row", row)
		}
	}
}

// parsePrefixes reads a comma-separated list of CIDRs or addresses.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, ok := store.ParseIPRange(f)
		if !ok {
			return nil, fmt.Errorf("%q is not a CIDR or an address", f)
		}
		out = append(out, p)
	}
	return out, nil
}

// openOrganization opens the store at dbPath (creating it if needed) and
// the organization called name (created if missing).
func openOrganization(ctx context.Context, dbPath, name string) (*store.DB, store.Organization, error) {
	db, err := store.Open(ctx, dbPath, nil)
	if err != nil {
		return nil, store.Organization{}, err
	}
	o, err := db.EnsureOrganization(ctx, name)
	if err != nil {
		db.Close()
		return nil, store.Organization{}, err
	}
	return db, o, nil
}

func runTokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", envOr("RAMPART_DB", ""), dbUsage)
	org := fs.String("org", "default", "organization name (created if missing)")
	desc := fs.String("description", "", "what the token is for")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dbPath == "" {
		return errors.New("token create: --db is required")
	}
	db, o, err := openOrganization(ctx, *dbPath, *org)
	if err != nil {
		return err
	}
	defer db.Close()
	tok, secret, err := db.CreateToken(ctx, o.ID, *desc)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]string{
		"access_key":      tok.AccessKey,
		"secret_key":      secret,
		"organization_id": o.ID,
		"project_id":      o.ProjectID(),
	})
}

func runUserCreate(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", envOr("RAMPART_DB", ""), dbUsage)
	email := fs.String("email", "", "the user's email, used to sign in")
	org := fs.String("org", "default", "organization name (created if missing)")
	operator := fs.Bool("operator", false, "the user also administers the install (hosts, organizations, users, grants); the first user always does")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dbPath == "" || *email == "" {
		return errors.New("user create: --db and --email are required")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	db, o, err := openOrganization(ctx, *dbPath, *org)
	if err != nil {
		return err
	}
	defer db.Close()
	u, err := db.CreateUser(ctx, o.ID, *email, password)
	if err != nil {
		return err
	}
	if *operator && !u.Operator {
		if u, err = db.SetOperator(ctx, u.ID, true); err != nil {
			return err
		}
	}
	role := "member"
	if u.Operator {
		role = "operator"
	}
	fmt.Fprintf(stdout, "created user %s (%s) in organization %s (%s)\n", u.Email, role, o.Name, o.ID)
	return nil
}
