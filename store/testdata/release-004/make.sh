#!/usr/bin/env bash
# Writes ../release-004.db, the database of the last release (commit
# c693b5a: migrations 001 to 004) with rows in every table, made by that
# release's own store, and prints the secret of its token "ci". The
# database is committed; this script is how it was made.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(git -C "$here" rev-parse --show-toplevel)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git -C "$repo" archive c693b5a go.mod go.sum store | tar -x -C "$tmp"
mkdir -p "$tmp/cmd/fixture"
cp "$here/main.go" "$tmp/cmd/fixture/main.go"
rm -f "$here/../release-004.db"
(cd "$tmp" && CGO_ENABLED=0 go run ./cmd/fixture "$tmp/release-004.db")
sqlite3 "$tmp/release-004.db" 'PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE; VACUUM;' >/dev/null
cp "$tmp/release-004.db" "$here/../release-004.db"
