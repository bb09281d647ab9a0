// Package passkey runs WebAuthn ceremonies (github.com/go-webauthn/webauthn)
// for the second-factor commands: the options a browser hands to
// navigator.credentials, and the checks of what it answers (origin,
// relying party, challenge, signature, user presence and verification).
//
// Challenges are kept server-side in ChallengesTable under the SHA-256 of
// the challenge, never the challenge itself, and each is taken (deleted)
// by the first answer that names it: a replayed answer finds nothing.
// What a ceremony proves (a new credential, a signature counter) is the
// caller's to record in the log; this package records nothing there.
package passkey

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ChallengesTable holds the open ceremonies. It is not a read model and
// holds nothing the log needs: a lost row is a ceremony to begin again.
const ChallengesTable = "webauthn_challenges"

// DefaultChallengeTTL is how long a ceremony stays open.
const DefaultChallengeTTL = 5 * time.Minute

// Ceremony purposes: a challenge answers only the ceremony it was made for.
const (
	PurposeRegister     = "register"
	PurposeSecondFactor = "second_factor"
	PurposePasswordless = "passwordless"
)

var (
	// ErrChallenge: the answer names no open challenge of this purpose
	// and subject (never issued, expired, or already answered).
	ErrChallenge = errors.New("passkey: no open challenge for this answer")
	// ErrInvalidResponse: the answer is malformed, or fails a check
	// (origin, relying party, signature, flags, credential unknown).
	ErrInvalidResponse = errors.New("passkey: the authenticator's answer does not verify")
)

// Config is the relying party.
type Config struct {
	RPID        string
	DisplayName string
	Origins     []string
	// ChallengeTTL is DefaultChallengeTTL when 0.
	ChallengeTTL time.Duration
	Now          func() time.Time
}

// Credential is a registered credential, as the caller keeps it.
type Credential struct {
	ID                []byte
	PublicKey         []byte
	SignCount         uint32
	AAGUID            []byte
	AttestationFormat string
	Transports        []string
	UserVerified      bool
	BackupEligible    bool
	BackupState       bool
}

// Account is the user a ceremony is for. The user handle is the user
// id's 16 bytes: opaque, no personal data (WebAuthn §14.6.1).
type Account struct {
	UserID      uuid.UUID
	Name        string
	DisplayName string
	Credentials []Credential
}

// RelyingParty runs the ceremonies. Safe for concurrent use.
type RelyingParty struct {
	wa   *webauthn.WebAuthn
	pool *pgxpool.Pool
	ttl  time.Duration
	now  func() time.Time
}

// New checks cfg and returns the relying party over pool.
func New(pool *pgxpool.Pool, cfg Config) (*RelyingParty, error) {
	if pool == nil {
		return nil, errors.New("passkey: a pool is required")
	}
	name := cfg.DisplayName
	if name == "" {
		name = cfg.RPID
	}
	wa, err := webauthn.New(&webauthn.Config{RPID: cfg.RPID, RPDisplayName: name, RPOrigins: cfg.Origins,
		AttestationPreference: protocol.PreferNoAttestation})
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	rp := &RelyingParty{wa: wa, pool: pool, ttl: cfg.ChallengeTTL, now: cfg.Now}
	if rp.ttl <= 0 {
		rp.ttl = DefaultChallengeTTL
	}
	if rp.now == nil {
		rp.now = time.Now
	}
	return rp, nil
}

// Setup creates ChallengesTable when it does not exist.
func (rp *RelyingParty) Setup(ctx context.Context) error {
	_, err := rp.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+ChallengesTable+` (
		digest     text PRIMARY KEY,
		purpose    text NOT NULL,
		subject    text NOT NULL,
		session    jsonb NOT NULL,
		expires_at timestamptz NOT NULL);
	CREATE INDEX IF NOT EXISTS `+ChallengesTable+`_expires ON `+ChallengesTable+` (expires_at)`)
	if err != nil {
		return fmt.Errorf("passkey: create %s: %w", ChallengesTable, err)
	}
	return nil
}

// BeginRegistration returns the PublicKeyCredentialCreationOptions for a
// new passkey of a: discoverable (so it can log in without a name),
// user verification preferred, a's passkeys excluded.
func (rp *RelyingParty) BeginRegistration(ctx context.Context, a Account) (json.RawMessage, error) {
	creation, session, err := rp.wa.BeginRegistration(user{a},
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithExclusions(webauthn.Credentials(user{a}.WebAuthnCredentials()).CredentialDescriptors()))
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	return rp.keep(ctx, PurposeRegister, a.UserID.String(), session, creation)
}

// FinishRegistration checks the answer to a's registration options and
// returns the new credential.
func (rp *RelyingParty) FinishRegistration(ctx context.Context, a Account, answer []byte) (Credential, error) {
	parsed, err := protocol.ParseCredentialCreationResponseBytes(answer)
	if err != nil {
		return Credential{}, ErrInvalidResponse
	}
	session, err := rp.take(ctx, PurposeRegister, a.UserID.String(), parsed.Response.CollectedClientData.Challenge)
	if err != nil {
		return Credential{}, err
	}
	c, err := rp.wa.CreateCredential(user{a}, session, parsed)
	if err != nil {
		return Credential{}, ErrInvalidResponse
	}
	return fromLibrary(c), nil
}

// BeginLogin returns the PublicKeyCredentialRequestOptions for a second
// factor of a, its answer bound to subject (the login's challenge).
func (rp *RelyingParty) BeginLogin(ctx context.Context, a Account, subject string) (json.RawMessage, error) {
	assertion, session, err := rp.wa.BeginLogin(user{a}, webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	return rp.keep(ctx, PurposeSecondFactor, subject, session, assertion)
}

// FinishLogin checks an answer to BeginLogin(a, subject) and returns the
// credential used, its counter the one just signed. The counter's rule
// (a clone) is the caller's: it holds the stored one.
func (rp *RelyingParty) FinishLogin(ctx context.Context, a Account, subject string, answer []byte) (Credential, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(answer)
	if err != nil {
		return Credential{}, ErrInvalidResponse
	}
	session, err := rp.take(ctx, PurposeSecondFactor, subject, parsed.Response.CollectedClientData.Challenge)
	if err != nil {
		return Credential{}, err
	}
	c, err := rp.wa.ValidateLogin(user{a}, session, parsed)
	if err != nil {
		return Credential{}, ErrInvalidResponse
	}
	return withCounter(c, parsed), nil
}

// BeginPasswordless returns request options that name no user: the
// authenticator offers its discoverable credentials, and must verify
// the user (PIN, biometrics), since the passkey is then the only factor.
func (rp *RelyingParty) BeginPasswordless(ctx context.Context) (json.RawMessage, error) {
	assertion, session, err := rp.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	return rp.keep(ctx, PurposePasswordless, "", session, assertion)
}

// FinishPasswordless checks an answer to BeginPasswordless: lookup finds
// the account of the answer's user handle (ErrInvalidResponse when
// there is none, like any other failure).
func (rp *RelyingParty) FinishPasswordless(ctx context.Context, answer []byte, lookup func(uuid.UUID) (Account, error)) (uuid.UUID, Credential, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(answer)
	if err != nil {
		return uuid.Nil, Credential{}, ErrInvalidResponse
	}
	session, err := rp.take(ctx, PurposePasswordless, "", parsed.Response.CollectedClientData.Challenge)
	if err != nil {
		return uuid.Nil, Credential{}, err
	}
	var found uuid.UUID
	var lookupErr error
	handler := func(_, handle []byte) (webauthn.User, error) {
		id, err := uuid.FromBytes(handle)
		if err != nil {
			return nil, err
		}
		a, err := lookup(id)
		if err != nil {
			lookupErr = err
			return nil, err
		}
		found = id
		return user{a}, nil
	}
	c, err := rp.wa.ValidateDiscoverableLogin(handler, session, parsed)
	if err != nil {
		if lookupErr != nil && !errors.Is(lookupErr, ErrInvalidResponse) {
			return uuid.Nil, Credential{}, lookupErr
		}
		return uuid.Nil, Credential{}, ErrInvalidResponse
	}
	// The library checks UV only as the session asked; ask again here,
	// since without it a stolen unlocked key would be a whole login.
	if !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		return uuid.Nil, Credential{}, ErrInvalidResponse
	}
	return found, withCounter(c, parsed), nil
}

// Digest is the key a challenge is kept under: hex SHA-256 of its
// base64url text (as clientDataJSON carries it).
func Digest(challenge string) string {
	sum := sha256.Sum256([]byte(challenge))
	return hex.EncodeToString(sum[:])
}

// keep stores session under its challenge's digest (the challenge
// itself blanked) and returns options as JSON.
func (rp *RelyingParty) keep(ctx context.Context, purpose, subject string, session *webauthn.SessionData, options any) (json.RawMessage, error) {
	digest := Digest(session.Challenge)
	stored := *session
	stored.Challenge = ""
	body, err := json.Marshal(stored)
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	now := rp.now()
	// Expired rows go on each write: the table stays the size of the
	// ceremonies open in the last TTL.
	if _, err := rp.pool.Exec(ctx, `DELETE FROM `+ChallengesTable+` WHERE expires_at < $1`, now); err != nil {
		return nil, fmt.Errorf("passkey: purge challenges: %w", err)
	}
	if _, err := rp.pool.Exec(ctx, `INSERT INTO `+ChallengesTable+` (digest, purpose, subject, session, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		digest, purpose, subject, body, now.Add(rp.ttl)); err != nil {
		return nil, fmt.Errorf("passkey: keep challenge: %w", err)
	}
	out, err := json.Marshal(options)
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	return out, nil
}

// take deletes and returns the session of challenge (as the client data
// carries it) when it is open for purpose and subject. Deleted whatever
// follows: a challenge gets one answer.
func (rp *RelyingParty) take(ctx context.Context, purpose, subject, challenge string) (webauthn.SessionData, error) {
	if _, err := base64.RawURLEncoding.DecodeString(challenge); err != nil || challenge == "" {
		return webauthn.SessionData{}, ErrChallenge
	}
	var gotPurpose, gotSubject string
	var body []byte
	var expires time.Time
	err := rp.pool.QueryRow(ctx, `DELETE FROM `+ChallengesTable+` WHERE digest = $1 RETURNING purpose, subject, session, expires_at`,
		Digest(challenge)).Scan(&gotPurpose, &gotSubject, &body, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return webauthn.SessionData{}, ErrChallenge
	}
	if err != nil {
		return webauthn.SessionData{}, fmt.Errorf("passkey: take challenge: %w", err)
	}
	if gotPurpose != purpose || gotSubject != subject || !rp.now().Before(expires) {
		return webauthn.SessionData{}, ErrChallenge
	}
	var s webauthn.SessionData
	if err := json.Unmarshal(body, &s); err != nil {
		return webauthn.SessionData{}, fmt.Errorf("passkey: stored session: %w", err)
	}
	s.Challenge = challenge
	return s, nil
}

// user adapts an Account to the library.
type user struct{ a Account }

func (u user) WebAuthnID() []byte          { return u.a.UserID[:] }
func (u user) WebAuthnName() string        { return u.a.Name }
func (u user) WebAuthnDisplayName() string { return u.a.DisplayName }

func (u user) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, 0, len(u.a.Credentials))
	for _, c := range u.a.Credentials {
		ts := make([]protocol.AuthenticatorTransport, 0, len(c.Transports))
		for _, t := range c.Transports {
			ts = append(ts, protocol.AuthenticatorTransport(t))
		}
		out = append(out, webauthn.Credential{ID: c.ID, PublicKey: c.PublicKey, AttestationFormat: c.AttestationFormat, Transport: ts,
			Flags:         webauthn.CredentialFlags{UserPresent: true, UserVerified: c.UserVerified, BackupEligible: c.BackupEligible, BackupState: c.BackupState},
			Authenticator: webauthn.Authenticator{AAGUID: c.AAGUID, SignCount: c.SignCount}})
	}
	return out
}

func fromLibrary(c *webauthn.Credential) Credential {
	ts := make([]string, 0, len(c.Transport))
	for _, t := range c.Transport {
		ts = append(ts, string(t))
	}
	return Credential{ID: c.ID, PublicKey: c.PublicKey, SignCount: c.Authenticator.SignCount, AAGUID: c.Authenticator.AAGUID,
		AttestationFormat: c.AttestationFormat, Transports: ts, UserVerified: c.Flags.UserVerified,
		BackupEligible: c.Flags.BackupEligible, BackupState: c.Flags.BackupState}
}

// withCounter is the credential with the counter the assertion signed
// (the library's UpdateCounter keeps the old one on a regression).
func withCounter(c *webauthn.Credential, parsed *protocol.ParsedCredentialAssertionData) Credential {
	out := fromLibrary(c)
	out.SignCount = parsed.Response.AuthenticatorData.Counter
	return out
}
