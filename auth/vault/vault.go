// Package vault keeps the external provider's tokens of each external
// session (access, ID and refresh token) in PostgreSQL, sealed with
// AES-256-GCM under a key derived from the master key (the table of
// migration 008), and hands the refresher the sessions whose tokens are
// due for renewal, each to one instance at a time.
//
// Only fingerprints (SHA-256, external.Fingerprint) and expiry times leave
// the vault in clear: they are what events may record. Opening a row needs
// the master key that sealed it, named by the row's key id, so a master
// key can rotate: configure the new one as MasterKey and the old ones as
// OldMasterKeys, and rows move to the new key as they are written
// (every refresh rewrites its row).
package vault

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/auth/keys"
)

var (
	// ErrNotFound: no tokens are stored for the session.
	ErrNotFound = errors.New("vault: no tokens for this session")
	// ErrUnknownKey: the row was sealed under a master key that is not
	// configured (neither MasterKey nor one of OldMasterKeys).
	ErrUnknownKey = errors.New("vault: sealed under a master key that is not configured")
	// ErrCorrupt: the row does not open (tampered, or moved to another
	// session or user).
	ErrCorrupt = errors.New("vault: sealed tokens are corrupt or were tampered with")
	// ErrClaimLost: the claim is no longer this caller's (its lease ran
	// out and another instance claimed the row, a Put replaced the
	// tokens, or the session's tokens were deleted): nothing was written.
	ErrClaimLost = errors.New("vault: claim lost")
)

// purpose is the HKDF info of the vault's key. Changing it makes every
// stored row unreadable.
const purpose = "external-token-vault v1"

// Config configures a Vault.
type Config struct {
	// Pool is a pool on a database migrated to include external_tokens.
	Pool *pgxpool.Pool
	// MasterKey seals every row written; required.
	MasterKey *keys.MasterKey
	// OldMasterKeys still open rows sealed under them (key rotation).
	OldMasterKeys []*keys.MasterKey
	// Lease is how long a claim made by Due lasts (default 5m): longer
	// than refreshing a whole claimed batch takes, or another instance may
	// claim a row whose refresh is still under way (that instance's
	// write then wins, and the first one's fails with ErrClaimLost).
	Lease time.Duration
	// Now is the clock (time.Now when nil). Claims and due times use it,
	// not the database's clock.
	Now func() time.Time
}

// Vault is the encrypted token table. Safe for concurrent use, and across
// instances sharing the database.
type Vault struct {
	pool    *pgxpool.Pool
	current sealer
	sealers map[string]sealer // by key id, current included
	lease   time.Duration
	now     func() time.Time
}

// sealer is an AEAD under one master key's vault key.
type sealer struct {
	id   string
	aead cipher.AEAD
}

// New returns a Vault.
func New(cfg Config) (*Vault, error) {
	var errs []error
	if cfg.Pool == nil {
		errs = append(errs, errors.New("vault: Pool is required"))
	}
	if cfg.MasterKey == nil {
		errs = append(errs, errors.New("vault: MasterKey is required"))
	}
	if cfg.Lease < 0 {
		errs = append(errs, fmt.Errorf("vault: Lease %s is negative", cfg.Lease))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Lease == 0 {
		cfg.Lease = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Vault{pool: cfg.Pool, sealers: map[string]sealer{}, lease: cfg.Lease, now: cfg.Now}
	for i, mk := range append([]*keys.MasterKey{cfg.MasterKey}, cfg.OldMasterKeys...) {
		s, err := newSealer(mk)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			v.current = s
		}
		if _, dup := v.sealers[s.id]; !dup {
			v.sealers[s.id] = s
		}
	}
	return v, nil
}

func newSealer(mk *keys.MasterKey) (sealer, error) {
	if mk == nil {
		return sealer{}, errors.New("vault: nil master key")
	}
	aead, err := mk.DeriveAEAD(purpose)
	if err != nil {
		return sealer{}, fmt.Errorf("vault: %w", err)
	}
	return sealer{id: mk.ID(), aead: aead}, nil
}

// Lease is how long a claim lasts.
func (v *Vault) Lease() time.Duration { return v.lease }

// Record is what may be known of a session's stored tokens without the
// master key: their fingerprints and expiry, what events record.
type Record struct {
	SessionID uuid.UUID
	UserID    uuid.UUID
	// KeyID names the master key the row is sealed under.
	KeyID              string
	AccessFingerprint  string
	IDFingerprint      string // "" when there is no ID token
	RefreshFingerprint string // "" when there is no refresh token
	ExpiresAt          time.Time
	CreatedAt          time.Time
	RefreshedAt        time.Time // zero until the first refresh
	// Version counts the writes of the row (1 after the first Put).
	Version int64
}

// Entry is a session's stored tokens, opened.
type Entry struct {
	Record
	Tokens external.Tokens
	// Failures counts consecutive failed refreshes; LastError is the last
	// one's message.
	Failures  int
	LastError string
}

// plain is the sealed JSON. Short names: it is only ever ciphertext.
type plain struct {
	Access  string `json:"a"`
	ID      string `json:"i,omitempty"`
	Refresh string `json:"r,omitempty"`
}

// additionalData binds a ciphertext to its row: tokens copied to another
// session or user, or relabelled with another key id, do not open.
func additionalData(session, user uuid.UUID, keyID string) []byte {
	return []byte("authledger/external-tokens/v1\x00" + session.String() + "\x00" + user.String() + "\x00" + keyID)
}

// sealed is a row's encrypted part.
type sealed struct {
	keyID      string
	nonce      []byte
	ciphertext []byte
}

func (v *Vault) seal(session, user uuid.UUID, t external.Tokens) (sealed, error) {
	b, err := json.Marshal(plain{Access: t.AccessToken, ID: t.IDToken, Refresh: t.RefreshToken})
	if err != nil {
		return sealed{}, fmt.Errorf("vault: %w", err)
	}
	defer clear(b)
	nonce := make([]byte, v.current.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return sealed{}, fmt.Errorf("vault: nonce: %w", err)
	}
	return sealed{
		keyID: v.current.id, nonce: nonce,
		ciphertext: v.current.aead.Seal(nil, nonce, b, additionalData(session, user, v.current.id)),
	}, nil
}

func (v *Vault) open(session, user uuid.UUID, s sealed) (plain, error) {
	sl, ok := v.sealers[s.keyID]
	if !ok {
		return plain{}, fmt.Errorf("%w: session %s, key %s", ErrUnknownKey, session, s.keyID)
	}
	if len(s.nonce) != sl.aead.NonceSize() {
		return plain{}, fmt.Errorf("%w: session %s", ErrCorrupt, session)
	}
	b, err := sl.aead.Open(nil, s.nonce, s.ciphertext, additionalData(session, user, s.keyID))
	if err != nil {
		return plain{}, fmt.Errorf("%w: session %s", ErrCorrupt, session)
	}
	defer clear(b)
	var p plain
	if err := json.Unmarshal(b, &p); err != nil || p.Access == "" {
		return plain{}, fmt.Errorf("%w: session %s", ErrCorrupt, session)
	}
	return p, nil
}

// Put stores (or replaces) a session's tokens, sealed under the current
// key, and returns what the log may record of them. Replacing clears the
// refresh failures and any claim on the row.
func (v *Vault) Put(ctx context.Context, session, user uuid.UUID, t external.Tokens) (Record, error) {
	if t.AccessToken == "" || t.ExpiresAt.IsZero() {
		return Record{}, errors.New("vault: Put needs an access token and its expiry")
	}
	s, err := v.seal(session, user, t)
	if err != nil {
		return Record{}, err
	}
	now := v.now().UTC()
	row := v.pool.QueryRow(ctx, `
		INSERT INTO external_tokens (session_id, user_id, key_id, nonce, ciphertext,
			access_fingerprint, id_fingerprint, refresh_fingerprint, expires_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (session_id) DO UPDATE SET
			user_id = EXCLUDED.user_id, key_id = EXCLUDED.key_id, nonce = EXCLUDED.nonce, ciphertext = EXCLUDED.ciphertext,
			access_fingerprint = EXCLUDED.access_fingerprint, id_fingerprint = EXCLUDED.id_fingerprint,
			refresh_fingerprint = EXCLUDED.refresh_fingerprint, expires_at = EXCLUDED.expires_at,
			version = external_tokens.version + 1, claim_id = NULL, claimed_until = NULL,
			failures = 0, last_error = NULL, next_attempt_at = NULL
		RETURNING `+recordColumns,
		session, user, s.keyID, s.nonce, s.ciphertext,
		external.Fingerprint(t.AccessToken), external.Fingerprint(t.IDToken), external.Fingerprint(t.RefreshToken),
		t.ExpiresAt.UTC(), now)
	r, err := scanRecord(row)
	if err != nil {
		return Record{}, fmt.Errorf("vault: put %s: %w", session, err)
	}
	return r, nil
}

// recordColumns are the columns scanRecord reads, in its order.
const recordColumns = `session_id, user_id, key_id, access_fingerprint, id_fingerprint, refresh_fingerprint,
	expires_at, created_at, refreshed_at, version`

func scanRecord(row pgx.Row, extra ...any) (Record, error) {
	var r Record
	var refreshed *time.Time
	dest := append([]any{&r.SessionID, &r.UserID, &r.KeyID, &r.AccessFingerprint, &r.IDFingerprint, &r.RefreshFingerprint,
		&r.ExpiresAt, &r.CreatedAt, &refreshed, &r.Version}, extra...)
	if err := row.Scan(dest...); err != nil {
		return Record{}, err
	}
	if refreshed != nil {
		r.RefreshedAt = *refreshed
	}
	return r, nil
}

// entryColumns are recordColumns and what opening and the refresher need.
const entryColumns = recordColumns + `, nonce, ciphertext, failures, coalesce(last_error, '')`

// scanEntry reads entryColumns and opens the tokens.
func (v *Vault) scanEntry(row pgx.Row) (Entry, error) {
	var e Entry
	var s sealed
	r, err := scanRecord(row, &s.nonce, &s.ciphertext, &e.Failures, &e.LastError)
	if err != nil {
		return Entry{}, err
	}
	e.Record, s.keyID = r, r.KeyID
	p, err := v.open(r.SessionID, r.UserID, s)
	if err != nil {
		return Entry{Record: r}, err // the record says which row did not open
	}
	e.Tokens = external.Tokens{AccessToken: p.Access, IDToken: p.ID, RefreshToken: p.Refresh, ExpiresAt: r.ExpiresAt}
	return e, nil
}

// Get opens a session's tokens; ErrNotFound when there are none.
func (v *Vault) Get(ctx context.Context, session uuid.UUID) (*Entry, error) {
	e, err := v.scanEntry(v.pool.QueryRow(ctx, `SELECT `+entryColumns+` FROM external_tokens WHERE session_id = $1`, session))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("vault: get %s: %w", session, err)
	}
	return &e, nil
}

// Delete removes a session's tokens (logout, revocation, the end of the
// session); it reports whether there were any. A refresh under way for
// the session then fails with ErrClaimLost and writes nothing.
func (v *Vault) Delete(ctx context.Context, session uuid.UUID) (bool, error) {
	tag, err := v.pool.Exec(ctx, `DELETE FROM external_tokens WHERE session_id = $1`, session)
	if err != nil {
		return false, fmt.Errorf("vault: delete %s: %w", session, err)
	}
	return tag.RowsAffected() > 0, nil
}

// DeleteUser removes the tokens of every session of a user (the account
// unlinked or deactivated) and returns how many sessions had some.
func (v *Vault) DeleteUser(ctx context.Context, user uuid.UUID) (int64, error) {
	tag, err := v.pool.Exec(ctx, `DELETE FROM external_tokens WHERE user_id = $1`, user)
	if err != nil {
		return 0, fmt.Errorf("vault: delete user %s: %w", user, err)
	}
	return tag.RowsAffected(), nil
}

// Claim is a row claimed for refresh by Due: its opened tokens and the
// claim that Renew, Fail and Release need.
type Claim struct {
	Entry
	claim uuid.UUID
	// Until is when the claim's lease runs out.
	Until time.Time
}

// Due claims up to limit sessions whose access token expires within
// buffer from now, oldest expiry first, skipping rows claimed by someone
// else (a live lease) and rows whose retry after a failure is not due
// yet. The claim is taken in one statement: FOR UPDATE SKIP LOCKED picks
// rows no concurrent Due is taking, and the lease then keeps them off
// every other instance's Due until Renew, Fail or Release, or until it
// runs out. No transaction stays open while the caller refreshes.
//
// A row that does not open (ErrUnknownKey, ErrCorrupt) is released and
// reported in err beside the claims that did open.
func (v *Vault) Due(ctx context.Context, buffer time.Duration, limit int) ([]Claim, error) {
	if limit <= 0 {
		return nil, nil
	}
	now := v.now().UTC()
	claim, until := uuid.New(), now.Add(v.lease)
	rows, err := v.pool.Query(ctx, `
		WITH due AS (
			SELECT session_id AS due_id FROM external_tokens
			WHERE expires_at <= $1
			  AND (claimed_until IS NULL OR claimed_until <= $2)
			  AND (next_attempt_at IS NULL OR next_attempt_at <= $2)
			ORDER BY expires_at
			LIMIT $3
			FOR UPDATE SKIP LOCKED
		)
		UPDATE external_tokens t SET claim_id = $4, claimed_until = $5
		FROM due WHERE t.session_id = due.due_id
		RETURNING `+entryColumns,
		now.Add(buffer), now, limit, claim, until)
	if err != nil {
		return nil, fmt.Errorf("vault: due: %w", err)
	}
	defer rows.Close()
	var out []Claim
	var bad []error
	var unopened []uuid.UUID
	for rows.Next() {
		e, err := v.scanEntry(rows)
		if err != nil {
			if !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrCorrupt) {
				return nil, fmt.Errorf("vault: due: %w", err)
			}
			bad = append(bad, err)
			unopened = append(unopened, e.SessionID)
			continue
		}
		out = append(out, Claim{Entry: e, claim: claim, Until: until})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("vault: due: %w", err)
	}
	// Rows that do not open wait a lease before they are tried again,
	// rather than being claimed on every pass.
	later := now.Add(v.lease)
	for _, id := range unopened {
		_ = v.release(ctx, id, claim, &later)
	}
	return out, errors.Join(bad...)
}

// Renew writes a claimed session's new tokens, sealed under the current
// key, and ends the claim, in one statement that succeeds only while the
// claim is still the caller's (ErrClaimLost otherwise, and nothing is
// written: a session logged out during its refresh stays without tokens).
func (v *Vault) Renew(ctx context.Context, c Claim, t external.Tokens) (Record, error) {
	if t.AccessToken == "" || t.ExpiresAt.IsZero() {
		return Record{}, errors.New("vault: Renew needs an access token and its expiry")
	}
	s, err := v.seal(c.SessionID, c.UserID, t)
	if err != nil {
		return Record{}, err
	}
	row := v.pool.QueryRow(ctx, `
		UPDATE external_tokens SET key_id = $3, nonce = $4, ciphertext = $5,
			access_fingerprint = $6, id_fingerprint = $7, refresh_fingerprint = $8, expires_at = $9,
			refreshed_at = $10, version = version + 1,
			claim_id = NULL, claimed_until = NULL, failures = 0, last_error = NULL, next_attempt_at = NULL
		WHERE session_id = $1 AND claim_id = $2
		RETURNING `+recordColumns,
		c.SessionID, c.claim, s.keyID, s.nonce, s.ciphertext,
		external.Fingerprint(t.AccessToken), external.Fingerprint(t.IDToken), external.Fingerprint(t.RefreshToken),
		t.ExpiresAt.UTC(), v.now().UTC())
	r, err := scanRecord(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return Record{}, fmt.Errorf("%w: session %s", ErrClaimLost, c.SessionID)
	}
	if err != nil {
		return Record{}, fmt.Errorf("vault: renew %s: %w", c.SessionID, err)
	}
	return r, nil
}

// Fail records a failed refresh of a claimed session (failures + 1, the
// cause's message) and ends the claim; the row is not due again before
// retryAt. It returns the consecutive failures so far.
func (v *Vault) Fail(ctx context.Context, c Claim, cause error, retryAt time.Time) (int, error) {
	msg := "unknown"
	if cause != nil {
		msg = cause.Error()
	}
	var failures int
	err := v.pool.QueryRow(ctx, `
		UPDATE external_tokens SET failures = failures + 1, last_error = $3, next_attempt_at = $4,
			claim_id = NULL, claimed_until = NULL
		WHERE session_id = $1 AND claim_id = $2
		RETURNING failures`, c.SessionID, c.claim, msg, retryAt.UTC()).Scan(&failures)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: session %s", ErrClaimLost, c.SessionID)
	}
	if err != nil {
		return 0, fmt.Errorf("vault: fail %s: %w", c.SessionID, err)
	}
	return failures, nil
}

// Release ends a claim without a change; the row is not due again before
// notBefore (zero: as soon as its expiry makes it due).
func (v *Vault) Release(ctx context.Context, c Claim, notBefore time.Time) error {
	var nb *time.Time
	if !notBefore.IsZero() {
		t := notBefore.UTC()
		nb = &t
	}
	return v.release(ctx, c.SessionID, c.claim, nb)
}

func (v *Vault) release(ctx context.Context, session, claim uuid.UUID, notBefore *time.Time) error {
	tag, err := v.pool.Exec(ctx, `
		UPDATE external_tokens SET claim_id = NULL, claimed_until = NULL, next_attempt_at = $3
		WHERE session_id = $1 AND claim_id = $2`, session, claim, notBefore)
	if err != nil {
		return fmt.Errorf("vault: release %s: %w", session, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: session %s", ErrClaimLost, session)
	}
	return nil
}
