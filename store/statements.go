package store

import (
	"context"
	"database/sql"
	"sync"
)

// statements keeps the statements run on one pool, prepared, by their
// text, so that SQLite parses a query once per connection instead of on
// every run: parsing was half the CPU of an API read (modernc's SQLite is
// C translated to Go, and its parser is its slowest part). pgx caches the
// statements of each connection itself, so PostgreSQL's pools have none.
//
// A statement missing from the cache runs unprepared, and is prepared on
// the pool in the background: preparing it there and then could wait for
// a connection held by the very transaction asking (SQLite's writer is
// one connection). Once cached, a transaction prepares it on its own
// connection the first time, and reuses it after (database/sql keeps a
// statement's connections).
type statements struct {
	pool *sql.DB
	bg   context.Context // ends at close
	stop context.CancelFunc
	wg   sync.WaitGroup // preparations under way

	mu     sync.RWMutex
	m      map[string]*sql.Stmt // nil value: being prepared, or could not be
	closed bool
}

// maxStatements bounds the cache: queries built at run time (lists of
// placeholders) are many texts, and past the bound run unprepared.
const maxStatements = 256

func newStatements(pool *sql.DB) *statements {
	bg, stop := context.WithCancel(context.Background())
	return &statements{pool: pool, bg: bg, stop: stop, m: map[string]*sql.Stmt{}}
}

// close waits for the preparations under way and closes the statements,
// before the pool closes.
func (s *statements) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	for _, st := range s.m {
		if st != nil {
			st.Close()
		}
	}
}

// get returns query prepared on the pool, or nil when it is not (yet).
func (s *statements) get(query string) *sql.Stmt {
	if s == nil {
		return nil
	}
	s.mu.RLock()
	st, seen := s.m[query]
	s.mu.RUnlock()
	if seen {
		return st
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.m[query]; seen || s.closed || len(s.m) >= maxStatements {
		return nil
	}
	s.m[query] = nil
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		st, err := s.pool.PrepareContext(s.bg, query)
		if err != nil {
			// The statement's own runs report what is wrong with it; a
			// store closing meanwhile leaves it out.
			return
		}
		s.mu.Lock()
		if s.closed {
			st.Close()
		} else {
			s.m[query] = st
		}
		s.mu.Unlock()
	}()
	return nil
}

// rows are the rows of a query run in a txn. A statement prepared on a
// connection has one cursor: while its rows are open, the same text run
// again in the transaction runs unprepared (release marks it free).
type rows struct {
	*sql.Rows
	release func()
}

// Next is sql.Rows' Next; the statement is free once the rows end.
func (r *rows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.done()
	return false
}

// Close is sql.Rows' Close, freeing the statement.
func (r *rows) Close() error {
	err := r.Rows.Close()
	r.done()
	return err
}

func (r *rows) done() {
	if r.release != nil {
		r.release()
		r.release = nil
	}
}

// row is the one row of QueryRowContext, as sql.Row: the query has run,
// Scan reads its first row and closes it.
type row struct {
	rows *rows
	err  error
}

// Scan copies the columns of the first row into dest, or returns
// sql.ErrNoRows when there is none.
func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	return r.rows.Close()
}
