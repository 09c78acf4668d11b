package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/internal/testdb"
)

// crashChildEnv names the database a re-executed test binary writes to
// until it is killed.
const crashChildEnv = "RAMPART_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dsn := os.Getenv(crashChildEnv); dsn != "" {
		crashChild(dsn)
		return
	}
	testdb.Main(m)
}

// crashChild creates groups with a rule each, and prints the ID of each
// group once its transaction has committed.
func crashChild(dsn string) {
	ctx := context.Background()
	db, err := Open(ctx, dsn, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	org, err := db.EnsureOrganization(ctx, "crash")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		g, err := db.CreateGroup(ctx, org.ID, "fr-par-1", GroupInput{Name: fmt.Sprintf("g%d", i)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("%s\n", g.ID)
	}
}

// TestCrashKeepsEveryCommittedChange kills a writer with SIGKILL mid-run:
// the database must reopen sound and hold every change reported committed.
func TestCrashKeepsEveryCommittedChange(t *testing.T) {
	dsn := testdb.DSN(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dsn)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var committed []string
	sc := bufio.NewScanner(out)
	deadline := time.After(20 * time.Second)
	for len(committed) < 300 && sc.Scan() {
		committed = append(committed, sc.Text())
		select {
		case <-deadline:
			t.Fatalf("child wrote only %d changes in 20 s", len(committed))
		default:
		}
	}
	// Kill mid-write: the child is inside its next transaction by now.
	cmd.Process.Signal(syscall.SIGKILL)
	for sc.Scan() { // lines already written before the kill were committed too
		committed = append(committed, sc.Text())
	}
	cmd.Wait()
	if len(committed) < 300 {
		t.Fatalf("child reported %d commits before dying", len(committed))
	}

	db, err := Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer db.Close()
	if res, err := db.IntegrityCheck(context.Background()); err != nil || res != "ok" {
		t.Fatalf("integrity_check = %q, %v", res, err)
	}
	var org string
	db.queryRow(context.Background(), `SELECT id FROM organizations WHERE name = 'crash'`).Scan(&org)
	for _, id := range committed {
		if _, err := db.Group(context.Background(), org, "fr-par-1", id); err != nil {
			t.Fatalf("committed group %s lost: %v", id, err)
		}
	}
	t.Logf("%d committed changes survived SIGKILL", len(committed))
}
