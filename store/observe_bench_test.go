package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkAppendLogEntries: one write of a batch of 1,000 entries into a
// group already holding MaxLogEntries (so that every batch also prunes
// 1,000): what a flood costs the store, at most one such write per
// DefaultLogFlushInterval per console.
func BenchmarkAppendLogEntries(b *testing.B) {
	db := openTestDB(b)
	ctx := context.Background()
	org := mustOrg(b, db, "acme").ID
	g := mustCreateGroup(b, db, org, "fr-par-1", GroupInput{Name: "web"})
	batch := make([]LogEntry, 1000)
	for i := range batch {
		batch[i] = logEntry(g.ID, 2*i, "")
	}
	for range MaxLogEntries / len(batch) {
		if _, err := db.AppendLogEntries(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		if _, err := db.AppendLogEntries(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/entry")
}

// BenchmarkRecordCounters: one write of 10,000 counts that moved (200
// groups of 50 rules on one host), as a busy host's second brings them.
func BenchmarkRecordCounters(b *testing.B) {
	db := openTestDB(b)
	ctx := context.Background()
	org := mustOrg(b, db, "acme").ID
	h, err := db.EnsureHost(ctx, "h1")
	if err != nil {
		b.Fatal(err)
	}
	groups := map[string]map[string]Counter{}
	for i := range 200 {
		g := mustCreateGroup(b, db, org, "fr-par-1", GroupInput{Name: fmt.Sprint("g", i)})
		tags := map[string]Counter{}
		for k := range 50 {
			tags[fmt.Sprint("rule-", k)] = Counter{Packets: 1, Bytes: 100}
		}
		groups[g.ID] = tags
	}
	b.ResetTimer()
	for n := range b.N {
		for _, tags := range groups {
			for tag, c := range tags {
				tags[tag] = Counter{Packets: c.Packets + uint64(n), Bytes: c.Bytes + 100}
			}
		}
		if err := db.RecordCounters(ctx, time.Now(), HostCounters{HostID: h.ID, Groups: groups}); err != nil {
			b.Fatal(err)
		}
	}
}
