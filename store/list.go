package store

import (
	"context"
	"strings"
)

// filter is the WHERE clause of a list, built from its filters with the
// engine's fragments.
type filter struct {
	e     engine
	where []string
	args  []any
}

func (f *filter) and(cond string, args ...any) {
	f.where = append(f.where, cond)
	f.args = append(f.args, args...)
}

// nameContains keeps the rows whose column holds s, in any case.
func (f *filter) nameContains(column, s string) {
	if s != "" {
		f.and(f.e.containsFold(column), s)
	}
}

// hasTags keeps the rows whose tags column (a JSON list) holds every tag.
func (f *filter) hasTags(column string, tags []string) {
	for _, t := range tags {
		f.and(f.e.jsonListHas(column), t)
	}
}

// listPage reads one page of a list and the number of rows matching in all,
// in one read: columns and from make the query, order sorts it, and load
// (if not nil) completes the page's items in the same transaction.
func listPage[T any](ctx context.Context, db *DB, f filter, p Page, all bool, columns, from, order string,
	scan func(scanner) (T, error), load func(context.Context, *txn, []T) error) ([]T, int, error) {
	limit, offset, err := p.bounds(50)
	if err != nil {
		return nil, 0, err
	}
	page := ` LIMIT ? OFFSET ?`
	if all {
		page = "" // every match
	}
	var items []T
	var total int
	err = db.read(ctx, func(tx *txn) error {
		cond := strings.Join(f.where, " AND ")
		if err := tx.QueryRowContext(ctx, `SELECT count(*) `+from+` WHERE `+cond, f.args...).Scan(&total); err != nil {
			return err
		}
		args := f.args
		if page != "" {
			args = append(args[:len(args):len(args)], limit, offset)
		}
		var err error
		items, err = queryAll(ctx, tx, scan, `SELECT `+columns+` `+from+` WHERE `+cond+
			` ORDER BY `+order+page, args...)
		if err != nil || load == nil {
			return err
		}
		return load(ctx, tx, items)
	})
	return items, total, err
}
