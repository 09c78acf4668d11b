package main

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// checks are what the verification found, for the report.
type checks struct {
	clients  int   // clients whose rules and server were read back equal to their models
	resolved int   // cut requests whose outcome was read back and allowed
	groups   int   // groups whose enforcement was compared
	startGen int64 // the generation before the load
	endGen   int64 // after it
	changes  int   // generations in the audit log after startGen: one per change, no gap
	kernels  []string
}

// verifyEnforcer waits for every group to be available, then compares the
// enforcer's text of each group with a compile of the database's snapshot,
// and with -netns, looks for each group's chains in the kernel.
func (h *harness) verifyEnforcer(clients []*client, ck *checks) error {
	c := h.consoles[0]
	db, err := store.Open(context.Background(), h.db, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(10 * time.Second)
	for _, cl := range clients {
		if err := waitAvailable(c, cl.group, time.Until(deadline)); err != nil {
			return fmt.Errorf("client %d: %w", cl.n, err)
		}
	}
	snap, err := db.Snapshot(context.Background())
	if err != nil {
		return err
	}
	want := enforcer.Compile(snap)
	var bad []string
	ids := []string{clients[0].shared}
	for _, cl := range clients {
		ids = append(ids, cl.group)
	}
	sort.Strings(ids)
	for _, id := range ids {
		var got struct {
			Ruleset string `json:"ruleset"`
		}
		if _, err := c.do("GET", "/security_groups/"+id+"/ruleset", nil, &got); err != nil {
			return err
		}
		if got.Ruleset != want.GroupText(id) {
			bad = append(bad, id)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the enforcer's ruleset differs from the compiled snapshot for %d groups (first %s)", len(bad), bad[0])
	}
	if c.ns != nil {
		// The console enforces its own host's view: the groups of the
		// servers on it (all of them: it is the only host, the default),
		// not a group whose server moved to the shared one.
		hosts, err := db.Hosts(context.Background())
		if err != nil {
			return err
		}
		var host store.Host
		for _, x := range hosts {
			if x.Default {
				host = x
			}
		}
		be, err := enforcer.NewNFTables(enforcer.WithNetNS(int(c.ns.handle)))
		if err != nil {
			return err
		}
		defer be.Close()
		rs := enforcer.Compile(snap.ForHost(host.ID))
		if err := be.Verify(context.Background(), rs); err != nil {
			return fmt.Errorf("the kernel does not hold the console's host's view: %w", err)
		}
		ck.kernels = append(ck.kernels, fmt.Sprintf("the console's (host %s: %d groups, generation %d)", host.Name, len(rs.Groups), snap.Generation))
	}
	ck.groups = len(ids)
	fmt.Printf("soak: %d groups available; the enforcer's text equals a compile of generation %d\n", len(ids), snap.Generation)
	return nil
}

// verifyKernels waits until every group is available at each console
// (every host holding its servers reported it applied), then reads each
// host's kernel, the consoles' and the agent's, and compares it with the
// compile of that host's view of the database (store.Snapshot.ForHost):
// every chain's rules, by tag, and the dispatch maps.
func (h *harness) verifyKernels(ctx context.Context, db *store.DB, clients []*client, probe string, ck *checks) error {
	ctx = context.WithoutCancel(ctx)
	ids := []string{clients[0].shared, probe}
	for _, cl := range clients {
		ids = append(ids, cl.group)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range h.consoles {
		for _, id := range ids {
			if err := waitAvailable(c, id, time.Until(deadline)); err != nil {
				return err
			}
		}
	}
	hosts, err := db.Hosts(ctx)
	if err != nil {
		return err
	}
	hostID := map[string]string{}
	for _, host := range hosts {
		hostID[host.Name] = host.ID
	}
	type kernel struct {
		name, host string
		fd         int
	}
	kernels := []kernel{}
	for _, c := range h.consoles {
		kernels = append(kernels, kernel{"console " + c.name, c.host, int(c.ns.handle)})
	}
	kernels = append(kernels, kernel{"the agent", h.agent.host, int(h.agent.ns.handle)})
	for _, k := range kernels {
		be, err := enforcer.NewNFTables(enforcer.WithNetNS(k.fd))
		if err != nil {
			return err
		}
		// The host may still be applying the last change: read again
		// until it holds the view of the database's last generation.
		for {
			snap, err := db.Snapshot(ctx)
			if err != nil {
				be.Close()
				return err
			}
			rs := enforcer.Compile(snap.ForHost(hostID[k.host]))
			err = be.Verify(ctx, rs)
			if err == nil {
				ck.kernels = append(ck.kernels, fmt.Sprintf("%s's (host %s: %d groups, generation %d)", k.name, k.host, len(rs.Groups), snap.Generation))
				break
			}
			if time.Now().After(deadline) {
				be.Close()
				return fmt.Errorf("%s's kernel does not hold its host's view: %w", k.name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		be.Close()
	}
	ck.groups = len(ids)
	fmt.Printf("soak: %d groups available at every console; %s\n", len(ids), strings.Join(ck.kernels, "; "))
	return nil
}

// verifyGenerations reads the audit log: every change after the load
// started took the next generation, each recorded with the change.
func (h *harness) verifyGenerations(ck *checks) error {
	driver, q := "sqlite", `SELECT DISTINCT generation FROM events WHERE generation > ? ORDER BY generation`
	dsn := "file:" + h.db + "?mode=ro"
	if store.IsPostgres(h.db) {
		driver, q, dsn = "pgx", `SELECT DISTINCT generation FROM events WHERE generation > $1 ORDER BY generation`, h.db
	}
	sdb, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer sdb.Close()
	ctx := context.Background()
	if err := sdb.QueryRowContext(ctx, `SELECT value FROM generation WHERE id = 1`).Scan(&ck.endGen); err != nil {
		return fmt.Errorf("read the generation: %w", err)
	}
	rows, err := sdb.QueryContext(ctx, q, ck.startGen)
	if err != nil {
		return fmt.Errorf("read the audit log: %w", err)
	}
	defer rows.Close()
	next := ck.startGen + 1
	for rows.Next() {
		var g int64
		if err := rows.Scan(&g); err != nil {
			return err
		}
		if g != next {
			return fmt.Errorf("the audit log jumps from generation %d to %d: a gap", next-1, g)
		}
		next++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if next-1 != ck.endGen {
		return fmt.Errorf("the audit log ends at generation %d, the counter at %d", next-1, ck.endGen)
	}
	ck.changes = int(ck.endGen - ck.startGen)
	fmt.Printf("soak: generations %d to %d each in the audit log: %d changes, no gap\n", ck.startGen+1, ck.endGen, ck.changes)
	return nil
}
