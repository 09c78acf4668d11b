package store

import "testing"

func TestNumbered(t *testing.T) {
	tests := []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE b = ? AND c IN (?, ?)`, `SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)`},
		{`UPDATE t SET x = '?' WHERE y = ?`, `UPDATE t SET x = '?' WHERE y = $1`},
		{`SELECT "odd?col" FROM t WHERE z = ?`, `SELECT "odd?col" FROM t WHERE z = $1`},
		{`SELECT 'it''s ?' , ?`, `SELECT 'it''s ?' , $1`},
		{`INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, `INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`},
	}
	for _, tt := range tests {
		if got := numbered(tt.in); got != tt.want {
			t.Errorf("numbered(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
