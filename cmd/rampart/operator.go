package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"strings"

	"github.com/rampart-fw/rampart/store"
)

// runGrant handles `rampart grant`: it lets an organization bind
// interfaces (shell globs) and, with --local, the host itself, on one host
// or on every host.
func runGrant(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("grant", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", envOr("RAMPART_DB", ""), "the database (env RAMPART_DB)")
	org := fs.String("org", "", "the organization's name")
	host := fs.String("host", "", "the host's name; every host when empty")
	ifaces := fs.String("interfaces", "", "comma-separated shell patterns of interface names, such as 'tap-acme-*,vnet1*'")
	local := fs.Bool("local", false, "the organization may also bind the host itself")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dbPath == "" || *org == "" {
		return errors.New("grant: --db and --org are required")
	}
	db, err := store.Open(ctx, *dbPath, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	o, err := db.OrganizationByName(ctx, *org)
	if err != nil {
		return err
	}
	var patterns []string
	for _, p := range strings.Split(*ifaces, ",") {
		if p = strings.TrimSpace(p); p != "" {
			patterns = append(patterns, p)
		}
	}
	g, err := db.CreateGrant(ctx, o.ID, *host, patterns, *local)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]any{
		"grant_id": g.ID, "organization": o.Name, "host": g.HostName, "interfaces": g.Interfaces, "local": g.Local,
	})
}
