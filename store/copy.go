package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// notCopied are tables that each database keeps for itself: the record
// of its own migrations.
var notCopied = map[string]bool{"migrations": true}

// Copy copies every row of every table of src into dst, whose generation
// must be 0 (nothing was ever changed in it), in one transaction on dst:
// a failed copy leaves dst as it was. Tables are taken from the schema,
// not from a list, so that a table added later is copied too; both stores
// must be migrated to the same schema (Open does that). Rows are read in
// one read transaction of src, at one generation. It returns how many rows
// each table received.
func Copy(ctx context.Context, src, dst *DB) (map[string]int, error) {
	srcTables, err := src.e.tables(ctx, src.r)
	if err != nil {
		return nil, fmt.Errorf("copy: read the source's schema: %w", err)
	}
	dstTables, err := dst.e.tables(ctx, dst.r)
	if err != nil {
		return nil, fmt.Errorf("copy: read the target's schema: %w", err)
	}
	tables, err := sameSchema(srcTables, dstTables)
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	counts := map[string]int{}
	err = src.read(ctx, func(from *txn) error {
		return dst.write(ctx, func(to *txn) error {
			// The generation row is locked first, as every change does:
			// no console on dst changes anything under the copy.
			var gen int64
			if err := to.QueryRowContext(ctx, `SELECT value FROM generation WHERE id = 1`+to.e.lockRows()).Scan(&gen); err != nil {
				return fmt.Errorf("read the target's generation: %w", err)
			}
			if gen != 0 {
				return &Error{Code: CodeConflict, Message: fmt.Sprintf("the target database is in use (generation %d): copy into an empty one", gen)}
			}
			// What migrations put in the target (the counters' rows) goes;
			// the source's rows replace it.
			for i := len(tables) - 1; i >= 0; i-- {
				if _, err := to.ExecContext(ctx, `DELETE FROM `+quoteIdent(tables[i].name)); err != nil {
					return fmt.Errorf("empty %s: %w", tables[i].name, err)
				}
			}
			for _, t := range tables {
				n, err := copyTable(ctx, from, to, t)
				if err != nil {
					return fmt.Errorf("copy %s: %w", t.name, err)
				}
				counts[t.name] = n
			}
			if err := to.e.afterCopy(ctx, to, tables); err != nil {
				return err
			}
			return to.e.announce(ctx, to, channelChange, "")
		})
	})
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	dst.tokens.expire()
	if gen, err := dst.Generation(ctx); err == nil && dst.saw(gen) {
		dst.notify()
	}
	return counts, nil
}

// sameSchema checks that both databases have the same tables with the same
// columns, and returns the tables to copy, each after the tables its
// foreign keys point to.
func sameSchema(src, dst []table) ([]table, error) {
	byName := map[string]table{}
	for _, t := range dst {
		if !notCopied[t.name] {
			byName[t.name] = t
		}
	}
	var tables []table
	for _, t := range src {
		if notCopied[t.name] {
			continue
		}
		d, ok := byName[t.name]
		if !ok {
			return nil, fmt.Errorf("table %s is in the source, not in the target: migrate both with the same release", t.name)
		}
		if a, b := slices.Sorted(slices.Values(t.columns)), slices.Sorted(slices.Values(d.columns)); !slices.Equal(a, b) {
			return nil, fmt.Errorf("table %s has columns %v in the source and %v in the target", t.name, a, b)
		}
		delete(byName, t.name)
		tables = append(tables, t)
	}
	for name := range byName {
		return nil, fmt.Errorf("table %s is in the target, not in the source: migrate both with the same release", name)
	}
	return orderByReferences(tables)
}

// orderByReferences sorts tables so that each comes after those it
// references.
func orderByReferences(tables []table) ([]table, error) {
	sort.Slice(tables, func(i, j int) bool { return tables[i].name < tables[j].name })
	done := map[string]bool{}
	var out []table
	for len(out) < len(tables) {
		progress := false
		for _, t := range tables {
			if done[t.name] {
				continue
			}
			ready := true
			for _, r := range t.references {
				if r != t.name && !done[r] {
					ready = false
				}
			}
			if ready {
				done[t.name] = true
				out = append(out, t)
				progress = true
			}
		}
		if !progress {
			return nil, errors.New("the tables' foreign keys form a cycle")
		}
	}
	return out, nil
}

// copyTable copies the rows of t, many rows to a statement.
func copyTable(ctx context.Context, from, to *txn, t table) (int, error) {
	cols := make([]string, len(t.columns))
	for i, c := range t.columns {
		cols[i] = quoteIdent(c)
	}
	list := strings.Join(cols, ", ")
	rows, err := from.QueryContext(ctx, `SELECT `+list+` FROM `+quoteIdent(t.name))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	perStatement := max(1, 500/len(cols))
	row := "(" + placeholders(len(cols)) + ")"
	var batch []any
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		k := len(batch) / len(cols)
		values := strings.TrimSuffix(strings.Repeat(row+", ", k), ", ")
		_, err := to.ExecContext(ctx, `INSERT INTO `+quoteIdent(t.name)+` (`+list+`) VALUES `+values, batch...)
		batch = batch[:0]
		return err
	}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		batch = append(batch, vals...)
		n++
		if n%perStatement == 0 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	return n, flush()
}

// Compare checks that a and b hold the same rows in every table, value by
// value, and names the first objects that differ: a row is an object,
// named by its table and primary key (or, without one, by all of it).
func Compare(ctx context.Context, a, b *DB) error {
	aTables, err := a.e.tables(ctx, a.r)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	bTables, err := b.e.tables(ctx, b.r)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	tables, err := sameSchema(aTables, bTables)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	var diffs []string
	for _, t := range tables {
		ra, err := canonicalRows(ctx, a, t)
		if err != nil {
			return fmt.Errorf("compare %s: %w", t.name, err)
		}
		rb, err := canonicalRows(ctx, b, t)
		if err != nil {
			return fmt.Errorf("compare %s: %w", t.name, err)
		}
		for key, va := range ra {
			switch vb, ok := rb[key]; {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("%s %s: only in the first", t.name, key))
			case va != vb:
				diffs = append(diffs, fmt.Sprintf("%s %s: %s ≠ %s", t.name, key, va, vb))
			}
		}
		for key := range rb {
			if _, ok := ra[key]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s %s: only in the second", t.name, key))
			}
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("and %d more", len(diffs)-20))
	}
	return fmt.Errorf("compare: the databases differ:\n%s", strings.Join(diffs, "\n"))
}

// canonicalRows reads every row of t as text that is the same for the
// same values on either engine, keyed by its primary key's values (or,
// in a table without one, by the whole row).
func canonicalRows(ctx context.Context, db *DB, t table) (map[string]string, error) {
	cols := make([]string, len(t.columns))
	for i, c := range t.columns {
		cols[i] = quoteIdent(c)
	}
	out := map[string]string{}
	err := db.read(ctx, func(tx *txn) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM `+quoteIdent(t.name))
		if err != nil {
			return err
		}
		defer rows.Close()
		names, err := rows.Columns()
		if err != nil {
			return err
		}
		for rows.Next() {
			vals := make([]any, len(names))
			ptrs := make([]any, len(names))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			// Columns by name, so that their order in each schema does
			// not matter.
			fields := make([]string, len(names))
			var key []string
			for i, v := range vals {
				fields[i] = names[i] + "=" + canonical(v)
				if slices.Contains(t.key, names[i]) {
					key = append(key, fields[i])
				}
			}
			sort.Strings(fields)
			row := strings.Join(fields, " ")
			if len(key) == 0 {
				key = []string{row}
			}
			sort.Strings(key)
			out[strings.Join(key, " ")] = row
		}
		return rows.Err()
	})
	return out, err
}

// canonical renders a value as both drivers return it: integers as int64,
// reals as float64, text as string, blobs as []byte.
func canonical(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return strconv.Quote(x)
	case []byte:
		return "x'" + hex.EncodeToString(x) + "'"
	default:
		return fmt.Sprintf("%T(%v)", v, v)
	}
}

// Backup writes a consistent copy of a SQLite database to a new file,
// readable by its owner only, while the database stays in use. PostgreSQL
// is backed up with its own tools (pg_dump).
func (db *DB) Backup(ctx context.Context, to string) error {
	if err := db.e.backup(ctx, db.r, to); err != nil {
		return fmt.Errorf("backup to %s: %w", to, err)
	}
	return nil
}
