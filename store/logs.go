package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The packet log: entries of the packets that rules (and default
// policies) logged, as the hosts' kernels sent them through NFLOG, kept in
// the store so that every console answers the same and a restart keeps
// them. Writing them is not a change: the generation does not move.

// MaxLogEntries is how many entries the store keeps per group: the newest.
const MaxLogEntries = 10_000

// Log query limits.
const (
	DefaultLogPerPage = 100
	MaxLogPerPage     = 1000
)

// Decider names what decided a logged packet, in the packet tester's
// terms: Kind is "rule", "smtp" (RuleID and Position set), "default_policy",
// "stateful" or "compile_error".
type Decider struct {
	Kind     string `json:"kind"`
	RuleID   string `json:"rule_id,omitempty"`
	Position int    `json:"position,omitempty"`
}

// LogEntry is one logged packet.
type LogEntry struct {
	// Cursor is the entry's place in the log, set when it is stored:
	// entries stored later have larger cursors (see LogEntries).
	Cursor  int64
	GroupID string
	Time    time.Time
	// Host is the name of the host whose kernel logged the packet;
	// ServerID the server of that host holding the packet's local
	// address (its destination inbound, its source outbound), "" when
	// none does.
	Host            string
	ServerID        string
	Direction       Direction
	Protocol        string // TCP, UDP, ICMP, or the protocol's number
	Source          netip.Addr
	SourcePort      uint16 // 0 without ports
	Destination     netip.Addr
	DestinationPort uint16
	Verdict         Policy
	DecidedBy       Decider
}

// LocalAddr is the address of the entry's packet on the protected side.
func (e LogEntry) LocalAddr() netip.Addr {
	if e.Direction == Outbound {
		return e.Source
	}
	return e.Destination
}

// MarshalJSON writes the entry as a JSON line of a log file: the API's
// fields, with the group and the cursor when known.
func (e LogEntry) MarshalJSON() ([]byte, error) {
	var server *string
	if e.ServerID != "" {
		server = &e.ServerID
	}
	return json.Marshal(struct {
		Time            string  `json:"time"`
		GroupID         string  `json:"group_id"`
		Host            string  `json:"host"`
		ServerID        *string `json:"server_id"`
		Direction       string  `json:"direction"`
		Protocol        string  `json:"protocol"`
		Source          string  `json:"source"`
		SourcePort      uint16  `json:"source_port"`
		Destination     string  `json:"destination"`
		DestinationPort uint16  `json:"destination_port"`
		Verdict         string  `json:"verdict"`
		DecidedBy       Decider `json:"decided_by"`
	}{e.Time.UTC().Format(time.RFC3339Nano), e.GroupID, e.Host, server, string(e.Direction), e.Protocol,
		e.Source.String(), e.SourcePort, e.Destination.String(), e.DestinationPort, string(e.Verdict), e.DecidedBy})
}

// LogQuery selects entries of one group. Its values are text, as a query
// string carries them; LogEntries checks them, naming the field.
type LogQuery struct {
	// Since is a cursor (LogPage.Next, an SSE event's id): the entries
	// stored after it, oldest first. Empty: the newest entries, oldest
	// first.
	Since string
	// Verdict keeps the entries of one verdict: "accept" or "drop".
	Verdict string
	// IP keeps the entries whose source or destination is this address.
	IP string
	// PerPage bounds the entries of one answer: 1 to MaxLogPerPage, 0 for
	// DefaultLogPerPage.
	PerPage int
}

// LogPage is one answer of LogEntries.
type LogPage struct {
	Entries []LogEntry // oldest first
	// Next is the cursor to ask for what comes after: the last entry's
	// when the page is full, else the newest cursor the store had issued
	// when it answered, so that a client polling with it skips what its
	// filter left out without missing anything stored later.
	Next string
}

// parsedLogQuery is a LogQuery checked.
type parsedLogQuery struct {
	since    int64
	hasSince bool
	verdict  Policy
	ip       netip.Addr
	limit    int
}

// parseLogQuery checks q, naming each bad field.
func parseLogQuery(q LogQuery) (parsedLogQuery, error) {
	var p parsedLogQuery
	var fe fieldErrors
	if q.Since != "" {
		n, err := strconv.ParseInt(q.Since, 10, 64)
		if err != nil || n < 0 {
			fe.add("since", "format", "must be a cursor, as \"next\" or an event's id gives it (got %q)", q.Since)
		}
		p.since, p.hasSince = n, true
	}
	switch v := Policy(strings.ToLower(q.Verdict)); v {
	case "":
	case Accept, Drop:
		p.verdict = v
	default:
		fe.add("verdict", "format", "must be accept or drop (got %q)", q.Verdict)
	}
	if q.IP != "" {
		a, err := netip.ParseAddr(strings.TrimSpace(q.IP))
		if err != nil || a.Zone() != "" {
			fe.add("ip", "format", "must be an IP address, such as 203.0.113.7 or 2001:db8::7 (got %q)", q.IP)
		}
		p.ip = a.Unmap()
	}
	switch {
	case q.PerPage == 0:
		p.limit = DefaultLogPerPage
	case q.PerPage < 1 || q.PerPage > MaxLogPerPage:
		fe.add("per_page", "constraint", "must be a whole number from 1 to %d", MaxLogPerPage)
	default:
		p.limit = q.PerPage
	}
	return p, fe.err()
}

const logColumns = `id, group_id, at, host, server_id, direction, protocol, source, source_port,
	destination, destination_port, verdict, decided_kind, decided_rule, decided_position`

func scanLogEntry(sc scanner) (LogEntry, error) {
	var e LogEntry
	var at, src, dst string
	var sport, dport int
	err := sc.Scan(&e.Cursor, &e.GroupID, &at, &e.Host, &e.ServerID, &e.Direction, &e.Protocol, &src, &sport,
		&dst, &dport, &e.Verdict, &e.DecidedBy.Kind, &e.DecidedBy.RuleID, &e.DecidedBy.Position)
	if err != nil {
		return LogEntry{}, err
	}
	e.Time = parseTime(at)
	e.Source, _ = netip.ParseAddr(src)
	e.Destination, _ = netip.ParseAddr(dst)
	e.SourcePort, e.DestinationPort = uint16(sport), uint16(dport)
	return e, nil
}

// LogEntries returns entries of a group of the organization, as q selects
// them. Cursors grow in the order entries were committed, on every engine
// and with several consoles writing (see AppendLogEntries): polling with
// Next never misses an entry nor sees one twice.
func (db *DB) LogEntries(ctx context.Context, orgID, zone, groupID string, q LogQuery) (LogPage, error) {
	p, err := parseLogQuery(q)
	if err != nil {
		return LogPage{}, err
	}
	if err := db.checkZone(zone); err != nil {
		return LogPage{}, err
	}
	var page LogPage
	err = db.read(ctx, func(tx *txn) error {
		if _, err := findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		var issued int64
		if err := tx.QueryRowContext(ctx, `SELECT value FROM log_cursor WHERE id = 1`).Scan(&issued); err != nil {
			return err
		}
		where := []string{"group_id = ?"}
		args := []any{groupID}
		if p.hasSince {
			where = append(where, "id > ?")
			args = append(args, p.since)
		}
		if p.verdict != "" {
			where = append(where, "verdict = ?")
			args = append(args, p.verdict)
		}
		if p.ip.IsValid() {
			where = append(where, "(source = ? OR destination = ?)")
			args = append(args, p.ip.String(), p.ip.String())
		}
		order := "DESC"
		if p.hasSince {
			order = "ASC"
		}
		args = append(args, p.limit)
		entries, err := queryAll(ctx, tx, scanLogEntry, `SELECT `+logColumns+` FROM log_entries WHERE `+
			strings.Join(where, " AND ")+` ORDER BY id `+order+` LIMIT ?`, args...)
		if err != nil {
			return err
		}
		if !p.hasSince {
			slices.Reverse(entries)
		}
		next := max(issued, p.since)
		if p.hasSince && len(entries) == p.limit {
			next = entries[len(entries)-1].Cursor
		}
		if entries == nil {
			entries = []LogEntry{}
		}
		page = LogPage{Entries: entries, Next: strconv.FormatInt(next, 10)}
		return nil
	})
	if err != nil {
		return LogPage{}, fmt.Errorf("log of group %s: %w", groupID, err)
	}
	return page, nil
}

// logRowsPerStatement bounds a multi-row insert: 50 rows of 15 values.
const logRowsPerStatement = 50

// AppendLogEntries stores entries (their Cursor is ignored) in one write
// that is not a change, and returns how many it stored: entries of groups
// that do not exist (deleted since, or never Rampart's) are left out. Each
// group it writes to keeps its newest MaxLogEntries, older ones pruned in
// the same write. Cursors are taken from the log_cursor row, which the
// write holds until it commits: writes take turns there, so cursors grow
// in commit order, on PostgreSQL with several consoles too.
func (db *DB) AppendLogEntries(ctx context.Context, entries []LogEntry) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	var stored int
	err := db.write(ctx, func(tx *txn) error {
		var ids []any
		seen := map[string]bool{}
		for _, e := range entries {
			if !seen[e.GroupID] {
				seen[e.GroupID] = true
				ids = append(ids, e.GroupID)
			}
		}
		exists := map[string]bool{}
		for chunk := range slices.Chunk(ids, 500) {
			found, err := queryAll(ctx, tx, func(sc scanner) (string, error) {
				var id string
				return id, sc.Scan(&id)
			}, `SELECT id FROM security_groups WHERE id IN (`+placeholders(len(chunk))+`)`, chunk...)
			if err != nil {
				return err
			}
			for _, id := range found {
				exists[id] = true
			}
		}
		keep := make([]LogEntry, 0, len(entries))
		for _, e := range entries {
			if exists[e.GroupID] {
				keep = append(keep, e)
			}
		}
		if len(keep) == 0 {
			return nil
		}
		var last int64
		if err := tx.QueryRowContext(ctx, `UPDATE log_cursor SET value = value + ? WHERE id = 1 RETURNING value`,
			len(keep)).Scan(&last); err != nil {
			return fmt.Errorf("take cursors: %w", err)
		}
		next := last - int64(len(keep)) + 1
		for chunk := range slices.Chunk(keep, logRowsPerStatement) {
			args := make([]any, 0, 15*len(chunk))
			for _, e := range chunk {
				args = append(args, next, e.GroupID, formatTime(e.Time), e.Host, e.ServerID, string(e.Direction), e.Protocol,
					e.Source.String(), int(e.SourcePort), e.Destination.String(), int(e.DestinationPort), string(e.Verdict),
					e.DecidedBy.Kind, e.DecidedBy.RuleID, e.DecidedBy.Position)
				next++
			}
			values := strings.TrimSuffix(strings.Repeat("("+placeholders(15)+"), ", len(chunk)), ", ")
			if _, err := tx.ExecContext(ctx, `INSERT INTO log_entries (`+logColumns+`) VALUES `+values, args...); err != nil {
				return fmt.Errorf("insert entries: %w", err)
			}
		}
		// Only the groups written to can have grown past the bound.
		for _, id := range ids {
			if !exists[id.(string)] {
				continue
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM log_entries WHERE group_id = ? AND id <= (
				SELECT id FROM log_entries WHERE group_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, id, id, MaxLogEntries); err != nil {
				return fmt.Errorf("prune the log of group %s: %w", id, err)
			}
		}
		stored = len(keep)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("append log entries: %w", err)
	}
	if stored > 0 {
		db.logWatch.notify()
	}
	return stored, nil
}

// WatchLog returns a channel that receives (holding one signal at most)
// after every write of log entries by this process, and a function to stop
// watching. Entries written by other processes on the same database are
// not announced: a follower also polls (LogPollInterval).
func (db *DB) WatchLog() (<-chan struct{}, func()) { return db.logWatch.watch() }

// LogPollInterval is how often a follower of the log should read it
// without being woken, to see what other consoles wrote.
const LogPollInterval = time.Second

// signal is a set of channels woken together, each holding one pending
// signal at most.
type signal struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func (s *signal) watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.subs == nil {
		s.subs = map[chan struct{}]struct{}{}
	}
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}
}

func (s *signal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Defaults of LogWriter.
const (
	DefaultLogFlushInterval = 250 * time.Millisecond
	DefaultLogBatch         = 1000
	DefaultLogPending       = 20_000
)

// LogWriter batches entries into the store: one write per
// DefaultLogFlushInterval, or as soon as DefaultLogBatch entries wait. It
// holds at most DefaultLogPending entries: while the store cannot keep up
// (or cannot be reached), what does not fit is dropped and counted, so
// that a flood can fill neither memory nor the store. Its methods are safe
// for concurrent use.
type LogWriter struct {
	db       *DB
	interval time.Duration
	batch    int
	pending  int

	// OnError, when set, is told of a batch that could not be written.
	OnError func(err error, entries int)

	mu   sync.Mutex
	buf  []LogEntry
	kick chan struct{}

	stored, dropped, failed atomic.Uint64
}

// NewLogWriter returns a writer of the store's log; it writes once Run
// runs.
func (db *DB) NewLogWriter() *LogWriter {
	return &LogWriter{db: db, interval: DefaultLogFlushInterval, batch: DefaultLogBatch, pending: DefaultLogPending,
		kick: make(chan struct{}, 1)}
}

// Add queues entries to be written; it never blocks.
func (w *LogWriter) Add(entries []LogEntry) {
	if len(entries) == 0 {
		return
	}
	w.mu.Lock()
	room := w.pending - len(w.buf)
	take := min(max(room, 0), len(entries))
	w.buf = append(w.buf, entries[:take]...)
	full := len(w.buf) >= w.batch
	w.mu.Unlock()
	if take < len(entries) {
		w.dropped.Add(uint64(len(entries) - take))
	}
	if full {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// LogWriterStats are a LogWriter's totals.
type LogWriterStats struct {
	Stored  uint64 // entries written to the store
	Dropped uint64 // entries that found the queue full
	Failed  uint64 // entries whose write failed (the store unreachable)
}

// Stats returns the writer's totals.
func (w *LogWriter) Stats() LogWriterStats {
	return LogWriterStats{Stored: w.stored.Load(), Dropped: w.dropped.Load(), Failed: w.failed.Load()}
}

// Run writes what is queued until ctx ends, then what is left, within a
// few seconds.
func (w *LogWriter) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			for w.flush(flush) {
			}
			cancel()
			return
		case <-t.C:
		case <-w.kick:
		}
		for w.flush(ctx) {
		}
	}
}

// flush writes one batch; it reports whether a full batch was written
// (more may be waiting).
func (w *LogWriter) flush(ctx context.Context) bool {
	w.mu.Lock()
	n := min(len(w.buf), w.batch)
	if n == 0 {
		w.mu.Unlock()
		return false
	}
	batch := slices.Clone(w.buf[:n])
	w.buf = slices.Delete(w.buf, 0, n)
	w.mu.Unlock()
	stored, err := w.db.AppendLogEntries(ctx, batch)
	if err != nil {
		// Not retried: the log is best effort, the counters are not (they
		// come from the kernel, which counts every packet).
		w.failed.Add(uint64(n))
		if w.OnError != nil && ctx.Err() == nil {
			w.OnError(err, n)
		}
		return false
	}
	w.stored.Add(uint64(stored))
	return n == w.batch
}
