// Command release-004 writes the database of the last release (commit
// c693b5a, migrations 001 to 004) with rows in every table, through that
// release's own store. It is built against that release's source by
// make.sh, not against this tree: it lives under testdata, which the go
// tool leaves out of ./... .
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rampart-fw/rampart/store"
)

func main() {
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(path string) error {
	ctx := store.WithActor(context.Background(), "user ops@example.com")
	db, err := store.Open(ctx, path, []string{"fr-par-1", "nl-ams-1"})
	if err != nil {
		return err
	}
	defer db.Close()
	at := time.Date(2026, 11, 20, 9, 30, 0, 123456000, time.UTC)
	db.Now = func() time.Time { at = at.Add(time.Second); return at }
	port := func(n int) *int { return &n }

	acme, err := db.EnsureOrganization(ctx, "acme")
	if err != nil {
		return err
	}
	globex, err := db.EnsureOrganization(ctx, "globex")
	if err != nil {
		return err
	}
	if _, err := db.CreateUser(ctx, acme.ID, "Ops@Example.com", "correct horse battery"); err != nil {
		return err
	}
	if _, err := db.CreateUser(ctx, globex.ID, "admin@globex.test", "another long password"); err != nil {
		return err
	}
	_, secret, err := db.CreateToken(ctx, acme.ID, "ci")
	if err != nil {
		return err
	}
	if _, _, err := db.CreateToken(ctx, globex.ID, "terraform"); err != nil {
		return err
	}
	web, err := db.CreateGroup(ctx, acme.ID, "fr-par-1", store.GroupInput{Name: "web", Description: "front ends",
		Tags: []string{"prod", "http"}, Stateful: true, InboundDefaultPolicy: store.Drop, EnableDefaultSecurity: true})
	if err != nil {
		return err
	}
	mail, err := db.CreateGroup(ctx, acme.ID, "fr-par-1", store.GroupInput{Name: "mail", EnableDefaultSecurity: false})
	if err != nil {
		return err
	}
	if _, err := db.CreateGroup(ctx, globex.ID, "nl-ams-1", store.GroupInput{Name: "théâtre", Tags: []string{"École"},
		OrganizationDefault: true, EnableDefaultSecurity: true}); err != nil {
		return err
	}
	for _, in := range []store.RuleInput{
		{IPRange: "0.0.0.0/0", DestPortFrom: port(443)},
		{IPRange: "192.0.2.0/24", DestPortFrom: port(22), Position: 1},
		{Direction: store.Outbound, Protocol: store.UDP, Action: store.Drop, IPRange: "2001:db8::/32", DestIPRange: "2001:db8::1", DestPortFrom: port(53), DestPortTo: port(54)},
		{Protocol: store.ICMP, IPRange: "10.0.0.0/8"},
	} {
		if _, err := db.CreateRule(ctx, acme.ID, "fr-par-1", web.ID, in); err != nil {
			return err
		}
	}
	if _, err := db.CreateRule(ctx, acme.ID, "fr-par-1", mail.ID, store.RuleInput{Protocol: store.ANY, IPRange: "198.51.100.7"}); err != nil {
		return err
	}
	if _, err := db.CreateServer(ctx, acme.ID, "fr-par-1", store.ServerInput{Name: "vm-1", Interface: "vnet0",
		Addresses: []string{"192.0.2.10", "2001:db8::10"}, Tags: []string{"blue"}, SecurityGroupID: web.ID}); err != nil {
		return err
	}
	if _, err := db.CreateServer(ctx, acme.ID, "fr-par-1", store.ServerInput{Name: "host", Local: true}); err != nil {
		return err
	}
	if _, err := db.CreateServer(ctx, acme.ID, "fr-par-1", store.ServerInput{Name: "metal", Type: store.BareMetal,
		Interface: "eno2", SecurityGroupID: mail.ID}); err != nil {
		return err
	}
	if _, err := db.Secret(ctx, "csrf", 32); err != nil {
		return err
	}
	if err := db.CommitCtx(ctx, "session-token-of-the-fixture", []byte("\x00\x01gob data"), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		return err
	}
	fmt.Println(secret) // the token's secret, for the tests
	return nil
}
