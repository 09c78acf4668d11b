package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The session methods implement the store of the console's session manager
// (github.com/alexedwards/scs/v2's CtxStore) on the same database. They do
// not count as changes: the enforcer has nothing to do with them.

// FindCtx returns the data of an unexpired session.
func (db *DB) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	var data []byte
	err := db.queryRow(ctx, `SELECT data FROM sessions WHERE token = ? AND expiry > ?`,
		token, float64(time.Now().UnixNano())/1e9).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("find session: %w", err)
	}
	return data, true, nil
}

// TouchSession moves the expiry of session token, leaving its data as
// they are: a request that changed nothing in its session must not write
// back what it read, over what a request beside it wrote meanwhile.
func (db *DB) TouchSession(ctx context.Context, token string, expiry time.Time) error {
	if _, err := db.exec(ctx, `UPDATE sessions SET expiry = ? WHERE token = ?`, float64(expiry.UnixNano())/1e9, token); err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

// CommitCtx saves a session until expiry, and drops expired ones.
func (db *DB) CommitCtx(ctx context.Context, token string, data []byte, expiry time.Time) error {
	now := float64(time.Now().UnixNano()) / 1e9
	if _, err := db.exec(ctx, `DELETE FROM sessions WHERE expiry <= ?`, now); err != nil {
		return fmt.Errorf("commit session: %w", err)
	}
	_, err := db.exec(ctx, `INSERT INTO sessions (token, data, expiry) VALUES (?, ?, ?)
		ON CONFLICT (token) DO UPDATE SET data = excluded.data, expiry = excluded.expiry`,
		token, data, float64(expiry.UnixNano())/1e9)
	if err != nil {
		return fmt.Errorf("commit session: %w", err)
	}
	return nil
}

// DeleteCtx removes a session.
func (db *DB) DeleteCtx(ctx context.Context, token string) error {
	if _, err := db.exec(ctx, `DELETE FROM sessions WHERE token = ?`, token); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// Find, Commit and Delete satisfy scs.Store for callers without a context.
func (db *DB) Find(token string) ([]byte, bool, error) {
	return db.FindCtx(context.Background(), token)
}

// Commit saves a session; see CommitCtx.
func (db *DB) Commit(token string, data []byte, expiry time.Time) error {
	return db.CommitCtx(context.Background(), token, data, expiry)
}

// Delete removes a session; see DeleteCtx.
func (db *DB) Delete(token string) error { return db.DeleteCtx(context.Background(), token) }

// Secret returns the server's secret called name, creating n random bytes
// on first use.
func (db *DB) Secret(ctx context.Context, name string, n int) ([]byte, error) {
	var v []byte
	err := db.queryRow(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read secret %s: %w", name, err)
	}
	v = make([]byte, n)
	rand.Read(v)
	if _, err := db.exec(ctx, `INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, v); err != nil {
		return nil, fmt.Errorf("create secret %s: %w", name, err)
	}
	return db.Secret(ctx, name, n)
}
