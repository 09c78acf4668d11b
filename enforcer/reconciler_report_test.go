package enforcer

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// TestReconcilerWatchAndGroups: what a host reports comes from Groups,
// and Watch says when to: after every apply, failed or not.
func TestReconcilerWatchAndGroups(t *testing.T) {
	src := newFakeSource(oneGroup(group(gA, true, store.Drop, store.Accept, false)))
	r := NewReconciler(src, NewPreview("test"), slog.New(slog.DiscardHandler))
	applied, stop := r.Watch()
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wait := func(what string) {
		t.Helper()
		select {
		case <-applied:
		case <-time.After(10 * time.Second):
			t.Fatalf("no notification %s within 10 s", what)
		}
	}
	wait("after the first apply")
	if g := r.Groups(); g[gA].Applied != 1 || g[gA].Error != "" || g[gB].Applied != 1 {
		t.Fatalf("Groups = %+v", g)
	}

	unreadable := oneGroup(group(gA, true, store.Drop, store.Accept, false))
	unreadable.Unreadable = map[string][]string{gA: {"group: inbound policy \"maybe\""}}
	gen := src.Set(unreadable)
	wait("after a compile error")
	g := r.Groups()[gA]
	if g.Applied != 1 || g.ErrorGeneration != gen || !strings.Contains(g.Error, "maybe") {
		t.Fatalf("group with unreadable rows: %+v", g)
	}
	if other := r.Groups()[gB]; other.Applied != gen || other.Error != "" {
		t.Fatalf("the other group: %+v", other)
	}
}
