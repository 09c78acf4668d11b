package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/rampart-fw/rampart/agent"
	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/fleet"
	"github.com/rampart-fw/rampart/packetlog"
	"github.com/rampart-fw/rampart/store"
)

// fleetFlags are serve's settings of hosts and agents, short in tests.
type fleetFlags struct {
	lostAfter, tokenTTL, certLifetime time.Duration
}

func (f *fleetFlags) register(fs *flag.FlagSet) error {
	var err error
	dur := func(p *time.Duration, name, env string, def time.Duration, usage string) {
		if v := os.Getenv(env); v != "" {
			d, perr := time.ParseDuration(v)
			if perr != nil && err == nil {
				err = fmt.Errorf("%s: %w", env, perr)
			}
			def = d
		}
		fs.DurationVar(p, name, def, usage+" (env "+env+")")
	}
	dur(&f.lostAfter, "lost-after", "RAMPART_LOST_AFTER", fleet.DefaultLostAfter, "silence after which a host is lost")
	dur(&f.tokenTTL, "join-token-ttl", "RAMPART_JOIN_TOKEN_TTL", store.DefaultJoinTokenTTL, "how long a join token may be redeemed")
	dur(&f.certLifetime, "cert-lifetime", "RAMPART_CERT_LIFETIME", fleet.DefaultCertLifetime, "lifetime of the hosts' certificates, renewed by their agents after two thirds")
	return err
}

// runHost runs `rampart host add|token|remove`.
func runHost(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: rampart host add|token|remove --db PATH --name NAME"
	if len(args) == 0 {
		return errors.New(usage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("host "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", envOr("RAMPART_DB", ""), "SQLite database file (env RAMPART_DB)")
	name := fs.String("name", "", "the host's name")
	var ttl *time.Duration
	if sub == "add" || sub == "token" {
		ttl = fs.Duration("join-token-ttl", store.DefaultJoinTokenTTL, "how long the join token may be redeemed")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dbPath == "" || *name == "" {
		return fmt.Errorf("host %s: --db and --name are required", sub)
	}
	db, err := store.Open(ctx, *dbPath, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	switch sub {
	case "add", "token":
		create := fleet.CreateHost
		if sub == "token" {
			create = fleet.NewJoinToken
		}
		h, token, err := create(ctx, db, *name, *ttl)
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(map[string]string{"host_id": h.ID, "name": h.Name, "join_token": token})
	case "remove":
		h, err := db.RemoveHost(ctx, *name)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed host %s (%s): its agent is refused from now on\n", h.Name, h.ID)
		return nil
	default:
		return errors.New(usage)
	}
}

// runAgent runs `rampart agent`: this machine's kernel, for a console.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	consoles := fs.String("console", envOr("RAMPART_CONSOLE", ""),
		"comma-separated agents' endpoints of the consoles, https://HOST:PORT; default: those given at enrolment (env RAMPART_CONSOLE)")
	token := fs.String("join-token", envOr("RAMPART_JOIN_TOKEN", ""),
		"join token from `rampart host add`, needed only to enrol (env RAMPART_JOIN_TOKEN)")
	// systemd's StateDirectory= says where in STATE_DIRECTORY.
	stateDir := fs.String("state-dir", envOr("RAMPART_STATE_DIR", envOr("STATE_DIRECTORY", "/var/lib/rampart-agent")),
		"keeps the credential and the last view (env RAMPART_STATE_DIR)")
	mode := fs.String("enforcer", envOr("RAMPART_ENFORCER", enforcer.ModeNFTables), "nftables, or preview to try without touching the kernel (env RAMPART_ENFORCER)")
	var lf logFlags
	if err := lf.register(fs, false); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	logCfg, err := lf.config()
	if err != nil {
		return err
	}
	if *mode == enforcer.ModeAuto {
		return errors.New("agent: --enforcer is nftables or preview: an agent that silently enforces nothing protects nothing")
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	backend, err := enforcer.Open(*mode)
	if err != nil {
		return err
	}
	// The agent reads its host's packet log (when it enforces with
	// nftables) and sends it to the console.
	a, err := agent.New(agent.Config{Consoles: splitZones(*consoles), JoinToken: strings.TrimSpace(*token),
		StateDir: *stateDir, Backend: backend, Logger: logger, Version: version, PacketLog: &packetlog.Config{}})
	if err != nil {
		return err
	}
	a.Reconciler().SetLogConfig(logCfg)
	logger.Info("agent starting", "state_dir", *stateDir, "enforcer", *mode)
	go func() {
		select {
		case <-ctx.Done():
		case <-a.Ready():
			if err := sdNotify("READY=1"); err != nil {
				logger.Warn("tell systemd the agent is ready", "err", err)
			}
		}
	}()
	if err := a.Run(ctx); err != nil {
		return err
	}
	logger.Info("agent stopped; the nftables ruleset stays in place (remove it with `rampart enforcer remove`)")
	return nil
}

// sdNotify sends state to the service manager (systemd's sd_notify
// protocol: one datagram to $NOTIFY_SOCKET), when there is one.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:] // an abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}
