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
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
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
  rampart serve [--listen 127.0.0.1:8080] [--db data/rampart.db] [--zones fr-par-1,nl-ams-1] [--enforcer auto|nftables|preview]
  rampart token create --db PATH [--org NAME]
  rampart user create --db PATH --email E [--org NAME] [--operator]   (password read from standard input)
  rampart grant --db PATH --org NAME [--host NAME] --interfaces 'tap-acme-*,vnet1*' [--local]
  rampart enforcer remove                                 (deletes the inet rampart table)
  rampart version
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
	dbPath := fs.String("db", envOr("RAMPART_DB", "data/rampart.db"), "SQLite database file (env RAMPART_DB)")
	zonesFlag := fs.String("zones", envOr("RAMPART_ZONES", "fr-par-1,nl-ams-1"), "comma-separated zones, the first is the default (env RAMPART_ZONES)")
	mode := fs.String("enforcer", envOr("RAMPART_ENFORCER", "auto"), "auto, nftables or preview (env RAMPART_ENFORCER)")
	secure := fs.Bool("secure-cookies", envOr("RAMPART_SECURE_COOKIES", "") == "1" || envOr("RAMPART_SECURE_COOKIES", "") == "true",
		"mark the console's cookies Secure, when it is reached over HTTPS (env RAMPART_SECURE_COOKIES)")
	proxies := fs.String("trusted-proxies", envOr("RAMPART_TRUSTED_PROXIES", ""),
		"comma-separated CIDRs of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (env RAMPART_TRUSTED_PROXIES)")
	if err := fs.Parse(args); err != nil {
		return err
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
	reportUnreadable(ctx, db, logger)

	backend, err := enforcer.Open(*mode)
	if err != nil {
		return err
	}
	rec := enforcer.NewReconciler(db, backend, logger)
	if m, why := backend.Mode(); m != enforcer.ModeNFTables {
		logger.Warn("not enforcing: rules are computed and shown, not applied to the kernel", "mode", m, "reason", why)
	} else {
		logger.Info("enforcing with nftables", "table", "inet rampart")
	}

	srv, err := web.New(web.Config{Store: db, Enforcer: rec, Logger: logger, Version: version,
		SecureCookies: *secure, TrustedProxies: trusted})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	logger.Info("listening", "addr", "http://"+ln.Addr().String(), "db", *dbPath, "zones", zones)
	if n, err := db.CountUsers(ctx); err == nil && n == 0 {
		logger.Info("no console user yet: create one with `rampart user create --db " + *dbPath + " --email you@example.com` (password on standard input)")
	}

	recCtx, stopRec := context.WithCancel(context.Background())
	recDone := make(chan error, 1)
	go func() { recDone <- rec.Run(recCtx) }()
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
		<-rollDone
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("shutting down; the nftables ruleset stays in place (remove it with `rampart enforcer remove`)")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = httpSrv.Shutdown(shutCtx)
	stopRec()
	<-recDone
	<-rollDone
	return err
}

// reportUnreadable logs the stored rows that the store could not read as
// valid: their groups fail closed until they are fixed.
func reportUnreadable(ctx context.Context, db *store.DB, logger *slog.Logger) {
	snap, err := db.Snapshot(ctx)
	if err != nil {
		logger.Error("check stored rows", "err", err)
		return
	}
	for gid, rows := range snap.Unreadable {
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
	dbPath := fs.String("db", envOr("RAMPART_DB", ""), "SQLite database file")
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
	dbPath := fs.String("db", envOr("RAMPART_DB", ""), "SQLite database file")
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
