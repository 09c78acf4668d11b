package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/alexedwards/argon2id"
	"github.com/google/uuid"
)

// EnsureOrganization returns the organization called name, creating it if
// it does not exist.
func (db *DB) EnsureOrganization(ctx context.Context, name string) (Organization, error) {
	name = strings.TrimSpace(name)
	var fe fieldErrors
	checkName(&fe, "org", name)
	if err := fe.err(); err != nil {
		return Organization{}, err
	}
	var org Organization
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		org, err = findOrganizationByName(ctx, tx, name)
		if err == nil {
			return errNoChange
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM organizations`).Scan(&n); err != nil {
			return err
		}
		org = Organization{ID: uuid.NewString(), Name: name, CreatedAt: db.Now().UTC()}
		if _, err = tx.ExecContext(ctx, `INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)`,
			org.ID, org.Name, formatTime(org.CreatedAt)); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		// The first organization may bind every interface and the host
		// itself, on every host: a single-tenant install works as before
		// grants existed.
		return insertGrant(ctx, tx, Grant{ID: uuid.NewString(), OrganizationID: org.ID, Interfaces: []string{"*"},
			Local: true, CreatedAt: org.CreatedAt})
	})
	if err != nil {
		return Organization{}, fmt.Errorf("ensure organization %q: %w", name, err)
	}
	return org, nil
}

func findOrganizationByName(ctx context.Context, tx *txn, name string) (Organization, error) {
	var org Organization
	var created string
	err := tx.QueryRowContext(ctx, `SELECT id, name, created_at FROM organizations WHERE name = ?`, name).
		Scan(&org.ID, &org.Name, &created)
	org.CreatedAt = parseTime(created)
	return org, err
}

// OrganizationByName returns the organization called name.
func (db *DB) OrganizationByName(ctx context.Context, name string) (Organization, error) {
	var org Organization
	err := db.read(ctx, func(tx *txn) error {
		var err error
		org, err = findOrganizationByName(ctx, tx, name)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("organization", name)
		}
		return err
	})
	if err != nil {
		return Organization{}, fmt.Errorf("get organization %q: %w", name, err)
	}
	return org, nil
}

// Organization returns the organization with the given ID.
func (db *DB) Organization(ctx context.Context, id string) (Organization, error) {
	var org Organization
	var created string
	err := db.queryRow(ctx, `SELECT id, name, created_at FROM organizations WHERE id = ?`, id).
		Scan(&org.ID, &org.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Organization{}, notFound("organization", id)
	}
	if err != nil {
		return Organization{}, fmt.Errorf("get organization %s: %w", id, err)
	}
	org.CreatedAt = parseTime(created)
	return org, nil
}

// Users returns the users of an organization, by email.
func (db *DB) Users(ctx context.Context, orgID string) ([]User, error) {
	rows, err := db.query(ctx, `SELECT id, organization_id, email, created_at FROM users
		WHERE organization_id = ? ORDER BY lower(email), id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		var u User
		var created string
		if err := rows.Scan(&u.ID, &u.OrganizationID, &u.Email, &created); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		u.CreatedAt = parseTime(created)
		users = append(users, u)
	}
	return users, rows.Err()
}

// CountUsers returns how many users exist in all organizations.
func (db *DB) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := db.queryRow(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// MinPasswordLength is the shortest password CreateUser accepts.
const MinPasswordLength = 8

// CreateUser adds a console user to an organization; the password is kept
// as an argon2id hash.
func (db *DB) CreateUser(ctx context.Context, orgID, email, password string) (User, error) {
	var fe fieldErrors
	email = strings.TrimSpace(email)
	if textProblem(email) != "" {
		fe.add("email", "format", "enter an email address such as ops@example.com")
	} else if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		fe.add("email", "format", "enter an email address such as ops@example.com")
	}
	if len(password) < MinPasswordLength {
		fe.add("password", "constraint", "the password needs at least %d characters", MinPasswordLength)
	}
	if err := fe.err(); err != nil {
		return User{}, err
	}
	hash, err := argon2id.CreateHash(password, argon2id.DefaultParams)
	if err != nil {
		return User{}, fmt.Errorf("hash password: %w", err)
	}
	u := User{ID: uuid.NewString(), OrganizationID: orgID, Email: email, CreatedAt: db.Now().UTC()}
	err = db.change(ctx, func(tx *txn, gen int64) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE `+db.e.equalFold("email"), email).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return invalid("email", "constraint", "a user with this email already exists")
		}
		// The first user of a database administers it.
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
			return err
		}
		u.Operator = n == 0
		_, err := tx.ExecContext(ctx, `INSERT INTO users (id, organization_id, email, password_hash, created_at, operator)
			VALUES (?, ?, ?, ?, ?, ?)`, u.ID, u.OrganizationID, u.Email, hash, formatTime(u.CreatedAt), boolInt(u.Operator))
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// dummyHash is compared against when the email is unknown, so that an
// unknown user costs as much time as a wrong password. It is made on first
// use: argon2id takes 64 MiB and tens of milliseconds, which every process
// (even `rampart version`) would otherwise pay at start.
var dummyHash = sync.OnceValue(func() string {
	h, _ := argon2id.CreateHash("not a real password", argon2id.DefaultParams)
	return h
})

// Authenticate checks an email and password and returns the user.
func (db *DB) Authenticate(ctx context.Context, email, password string) (User, error) {
	var fe fieldErrors
	if strings.TrimSpace(email) == "" {
		fe.add("email", "required", "enter your email address")
	}
	if password == "" {
		fe.add("password", "required", "enter your password")
	}
	if err := fe.err(); err != nil {
		return User{}, err
	}
	var u User
	var hash, created string
	err := db.queryRow(ctx, `SELECT id, organization_id, email, password_hash, created_at
		FROM users WHERE `+db.e.equalFold("email"), strings.TrimSpace(email)).
		Scan(&u.ID, &u.OrganizationID, &u.Email, &hash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		argon2id.ComparePasswordAndHash(password, dummyHash())
		return User{}, &Error{Code: CodeUnauthorized, Message: "wrong email or password"}
	}
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	ok, err := argon2id.ComparePasswordAndHash(password, hash)
	if err != nil {
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	if !ok {
		return User{}, &Error{Code: CodeUnauthorized, Message: "wrong email or password"}
	}
	u.CreatedAt = parseTime(created)
	return u, nil
}

// Account returns a user and its organization, in one query: what every
// signed-in console request needs.
func (db *DB) Account(ctx context.Context, userID string) (User, Organization, error) {
	var u User
	var o Organization
	var created, orgCreated string
	var op int
	err := db.queryRow(ctx, `SELECT u.id, u.organization_id, u.email, u.created_at, u.operator, o.name, o.created_at
		FROM users u JOIN organizations o ON o.id = u.organization_id WHERE u.id = ?`, userID).
		Scan(&u.ID, &u.OrganizationID, &u.Email, &created, &op, &o.Name, &orgCreated)
	u.Operator = op == 1
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, Organization{}, notFound("user", userID)
	}
	if err != nil {
		return User{}, Organization{}, fmt.Errorf("get account: %w", err)
	}
	u.CreatedAt, o.ID, o.CreatedAt = parseTime(created), u.OrganizationID, parseTime(orgCreated)
	return u, o, nil
}

// SetOperator makes a user an operator of the install, or not.
func (db *DB) SetOperator(ctx context.Context, userID string, operator bool) (User, error) {
	var u User
	err := db.change(ctx, func(tx *txn, gen int64) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET operator = ? WHERE id = ?`, boolInt(operator), userID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound("user", userID)
		}
		return nil
	})
	if err != nil {
		return User{}, fmt.Errorf("set operator: %w", err)
	}
	u, err = db.User(ctx, userID)
	return u, err
}

// Organizations lists every organization, by name: what operators see.
func (db *DB) Organizations(ctx context.Context) ([]Organization, error) {
	var orgs []Organization
	err := db.read(ctx, func(tx *txn) error {
		var err error
		orgs, err = queryAll(ctx, tx, func(sc scanner) (Organization, error) {
			var o Organization
			var created string
			err := sc.Scan(&o.ID, &o.Name, &created)
			o.CreatedAt = parseTime(created)
			return o, err
		}, `SELECT id, name, created_at FROM organizations ORDER BY name`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list organizations: %w", err)
	}
	return orgs, nil
}

// AllUsers lists every user of every organization, by email: what
// operators see.
func (db *DB) AllUsers(ctx context.Context) ([]User, error) {
	var users []User
	err := db.read(ctx, func(tx *txn) error {
		var err error
		users, err = queryAll(ctx, tx, scanUser, `SELECT id, organization_id, email, operator, created_at FROM users ORDER BY email`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

func scanUser(sc scanner) (User, error) {
	var u User
	var op int
	var created string
	err := sc.Scan(&u.ID, &u.OrganizationID, &u.Email, &op, &created)
	u.Operator, u.CreatedAt = op == 1, parseTime(created)
	return u, err
}

// User returns a user by ID.
func (db *DB) User(ctx context.Context, id string) (User, error) {
	u, err := scanUser(db.queryRow(ctx, `SELECT id, organization_id, email, operator, created_at FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, notFound("user", id)
	}
	if err != nil {
		return User{}, fmt.Errorf("get user: %w", err)
	}
	return u, nil
}

const accessKeyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func newAccessKey() string {
	b := make([]byte, 17)
	rand.Read(b)
	for i := range b {
		// 256 is not a multiple of 36; the bias is irrelevant for an
		// identifier that is not a secret.
		b[i] = accessKeyAlphabet[int(b[i])%len(accessKeyAlphabet)]
	}
	return "SCW" + string(b)
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(secret)))
	return hex.EncodeToString(sum[:])
}

// MaxTokenDescription bounds a token's description.
const MaxTokenDescription = 255

// CreateToken makes an API key for an organization and returns it with its
// secret, which is not kept and cannot be shown again.
func (db *DB) CreateToken(ctx context.Context, orgID, description string) (Token, string, error) {
	description = strings.TrimSpace(description)
	var fe fieldErrors
	if checkText(&fe, "description", description) && utf8.RuneCountInString(description) > MaxTokenDescription {
		fe.add("description", "constraint", "at most %d characters", MaxTokenDescription)
	}
	if err := fe.err(); err != nil {
		return Token{}, "", err
	}
	secret := uuid.NewString()
	t := Token{AccessKey: newAccessKey(), OrganizationID: orgID, Description: description, CreatedAt: db.Now().UTC()}
	err := db.change(ctx, func(tx *txn, gen int64) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens (access_key, organization_id, secret_hash, description, created_at)
			VALUES (?, ?, ?, ?, ?)`, t.AccessKey, orgID, hashSecret(secret), t.Description, formatTime(t.CreatedAt))
		return err
	})
	if err != nil {
		return Token{}, "", fmt.Errorf("create token: %w", err)
	}
	return t, secret, nil
}

// Tokens lists an organization's tokens, newest first.
func (db *DB) Tokens(ctx context.Context, orgID string) ([]Token, error) {
	rows, err := db.query(ctx, `SELECT access_key, organization_id, description, created_at
		FROM tokens WHERE organization_id = ? ORDER BY created_at DESC, access_key`, orgID)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var tokens []Token
	for rows.Next() {
		var t Token
		var created string
		if err := rows.Scan(&t.AccessKey, &t.OrganizationID, &t.Description, &created); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		t.CreatedAt = parseTime(created)
		tokens = append(tokens, t)
	}
	return tokens, rows.Err()
}

// DeleteToken revokes a token of the organization. Every process on the
// database refuses it within revocationCheck: the change counts a
// revocation, which the processes that keep tokens in memory read.
func (db *DB) DeleteToken(ctx context.Context, orgID, accessKey string) error {
	err := db.change(ctx, func(tx *txn, gen int64) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE access_key = ? AND organization_id = ?`, accessKey, orgID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound(ResourceToken, accessKey)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE revocations SET value = value + 1 WHERE id = 1`); err != nil {
			return err
		}
		return db.e.announce(ctx, tx, channelRevocation, "")
	})
	if err != nil {
		return fmt.Errorf("delete token %s: %w", accessKey, err)
	}
	db.tokens.forget(accessKey)
	return nil
}

// Token cache bounds.
const (
	// tokenCacheTTL bounds how long a token found once is trusted without
	// reading it again.
	tokenCacheTTL = 30 * time.Second
	// revocationCheck bounds how long a token revoked by another process
	// may still be taken here: the cache reads the revocation count again
	// when its last reading is older (a notification makes it sooner).
	revocationCheck = 500 * time.Millisecond
	maxCachedTokens = 10000
)

// tokenCache keeps tokens found by TokenBySecret, keyed by secret hash,
// so that API calls are authenticated without a query. Each entry holds
// the revocation count read with it, and is only taken while that count
// is the newest one known and the count was read less than
// revocationCheck ago.
type tokenCache struct {
	mu          sync.Mutex
	m           map[string]cachedToken
	revocations int64     // the newest revocation count read
	checked     time.Time // when it was read; zero: read it again

	checkMu sync.Mutex // one reading of the count at a time
}

type cachedToken struct {
	token       Token
	revocations int64
	expires     time.Time
}

// get returns the cached token for hash, if it may be taken.
func (c *tokenCache) get(hash string, now time.Time) (Token, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[hash]
	if !ok || e.revocations != c.revocations || !now.Before(e.expires) {
		return Token{}, false
	}
	return e.token, true
}

// fresh reports whether the revocation count was read recently enough.
func (c *tokenCache) fresh(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.checked.IsZero() && now.Sub(c.checked) < revocationCheck
}

// learn records a revocation count read at time at; a newer count than
// known drops every entry read before it.
func (c *tokenCache) learn(revocations int64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if revocations > c.revocations {
		clear(c.m)
		c.revocations = revocations
	}
	if revocations >= c.revocations && at.After(c.checked) {
		c.checked = at
	}
}

// put caches a token read with revocation count revocations.
func (c *tokenCache) put(hash string, t Token, revocations int64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if revocations < c.revocations {
		return // read before a revocation this process knows of
	}
	if len(c.m) >= maxCachedTokens {
		clear(c.m) // bounded; refilled on demand
	}
	c.m[hash] = cachedToken{token: t, revocations: revocations, expires: now.Add(tokenCacheTTL)}
}

// forget drops a token revoked by this process.
func (c *tokenCache) forget(accessKey string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, e := range c.m {
		if e.token.AccessKey == accessKey {
			delete(c.m, h)
		}
	}
}

// expire makes the next use read the revocation count again: another
// process announced a revocation.
func (c *tokenCache) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked = time.Time{}
}

// checkRevocations reads the revocation count if the last reading is
// older than revocationCheck.
func (db *DB) checkRevocations(ctx context.Context) error {
	if db.tokens.fresh(time.Now()) {
		return nil
	}
	db.tokens.checkMu.Lock()
	defer db.tokens.checkMu.Unlock()
	if db.tokens.fresh(time.Now()) {
		return nil // read by another request meanwhile
	}
	at := time.Now()
	var n int64
	if err := db.queryRow(ctx, `SELECT value FROM revocations WHERE id = 1`).Scan(&n); err != nil {
		return fmt.Errorf("read revocations: %w", err)
	}
	db.tokens.learn(n, at)
	return nil
}

// TokenBySecret returns the token whose secret is given. Only hashes are
// stored, and the stored hash is compared in constant time. Tokens found
// are kept in memory (see tokenCache).
func (db *DB) TokenBySecret(ctx context.Context, secret string) (Token, error) {
	if _, err := uuid.Parse(secret); err != nil {
		return Token{}, &Error{Code: CodeUnauthorized, Message: "invalid token"}
	}
	want := hashSecret(secret)
	if err := db.checkRevocations(ctx); err != nil {
		return Token{}, err
	}
	if t, ok := db.tokens.get(want, time.Now()); ok {
		return t, nil
	}
	var t Token
	var stored, created string
	var revocations int64
	at := time.Now()
	// The token and the revocation count in one statement, so that they
	// are read at one moment: a token cached with a count is one that
	// was valid when that count was current.
	err := db.queryRow(ctx, `SELECT t.access_key, t.organization_id, t.secret_hash, t.description, t.created_at, r.value
		FROM tokens t CROSS JOIN revocations r WHERE t.secret_hash = ? AND r.id = 1`, want).
		Scan(&t.AccessKey, &t.OrganizationID, &stored, &t.Description, &created, &revocations)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, &Error{Code: CodeUnauthorized, Message: "token not found"}
	}
	if err != nil {
		return Token{}, fmt.Errorf("find token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(stored), []byte(want)) != 1 {
		return Token{}, &Error{Code: CodeUnauthorized, Message: "token not found"}
	}
	t.CreatedAt = parseTime(created)
	db.tokens.learn(revocations, at)
	db.tokens.put(want, t, revocations, time.Now())
	return t, nil
}
