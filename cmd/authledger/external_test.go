package main

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/vault"
	"github.com/authledger/authledger/test/extauthserver"
	"github.com/authledger/authledger/test/pgtest"
)

// The provider's accounts. Alice also has a local account (another
// password, another display name); Bob has none.
var (
	provAlice = extauthserver.User{ID: "ext-alice-0001", Email: "Alice@Example.com", Name: "Alice Provider", Password: "alice at the provider"}
	provBob   = extauthserver.User{ID: "ext-bob-0002", Email: "bob@example.com", Name: "Bob Provider", Password: "bob at the provider"}
)

// externalEnv is the service's environment with external auth on against
// p (plain http, which only ALLOW_INSECURE accepts).
func externalEnv(t *testing.T, p *extauthserver.Server, db string, more map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{
		"DATABASE_URL":                            db,
		"AUTHLEDGER_WORKERS":                      "0",
		"AUTHLEDGER_RATE_LIMIT_PER_SECOND":        "0",
		"AUTHLEDGER_MASTER_KEY":                   testMasterKey,
		"AUTHLEDGER_USE_EXTERNAL_AUTH":            "on",
		"AUTHLEDGER_EXTERNAL_AUTH_URL":            p.URL,
		"AUTHLEDGER_EXTERNAL_AUTH_ISSUER":         p.Issuer,
		"AUTHLEDGER_EXTERNAL_AUTH_AUDIENCE":       "authledger-test",
		"AUTHLEDGER_EXTERNAL_AUTH_ALLOW_INSECURE": "true",
		"AUTHLEDGER_EXTERNAL_AUTH_TIMEOUT":        "2s",
	}
	for k, v := range more {
		env[k] = v
	}
	return env
}

// testVault opens the service's vault with the test master key, to read
// what the service stored.
func testVault(t *testing.T, db string) (*vault.Vault, *pgxpool.Pool) {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	mk, err := keys.ParseMasterKey(testMasterKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(vault.Config{Pool: pool, MasterKey: mk})
	if err != nil {
		t.Fatal(err)
	}
	return v, pool
}

type login struct {
	status  int
	header  http.Header
	body    map[string]any
	access  string
	session uuid.UUID
	userID  uuid.UUID
}

func (r *running) externalLogin(email, password string) login {
	r.t.Helper()
	status, hdr, body := r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": password})
	l := login{status: status, header: hdr, body: body}
	if status == http.StatusOK {
		l.access = body["access_token"].(string)
		l.session = uuid.MustParse(body["session_id"].(string))
		l.userID = uuid.MustParse(body["user"].(map[string]any)["id"].(string))
	}
	return l
}

// me reads /v1/me, waiting for the read models to reach l's write.
func (r *running) me(l login) map[string]any {
	r.t.Helper()
	status, _, me := r.call("GET", "/v1/me", l.access, nil, "X-Consistency-Token", l.header.Get("X-Consistency-Token"))
	if status != http.StatusOK {
		r.t.Fatalf("/v1/me: %d %v", status, me)
	}
	return me
}

// withoutInstance drops the one member of a problem that differs between
// two answers (the request's id).
func withoutInstance(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if k != "instance" {
			out[k] = v
		}
	}
	return out
}

// External login through the assembled service against the test provider:
// the first login links the local account with the provider's address and
// takes the provider's display name, or provisions a user; wrong
// credentials answer the local 401 after exactly one call to the provider;
// logout empties the vault; and neither the log nor the service's logs
// hold a provider token.
func TestExternalLoginLinksProvisionsAndForgetsTokens(t *testing.T) {
	t.Parallel()
	p := extauthserver.Start(t, extauthserver.Config{Plain: true, Users: []extauthserver.User{provAlice, provBob}})
	db := pgtest.NewDatabase(t)
	r := startService(t, externalEnv(t, p, db, map[string]string{"AUTHLEDGER_EXTERNAL_AUTH_PROVISION": "true"}))
	vlt, pool := testVault(t, db)

	// Alice registered before external auth existed.
	status, _, reg := r.call("POST", "/v1/auth/register", "", map[string]string{"email": "alice@example.com", "password": "alice's old local password", "display_name": "Alice"})
	if status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, reg)
	}
	aliceID := uuid.MustParse(reg["user_id"].(string))

	// Her local password is no longer what logs her in: the provider
	// refuses it, with the answer of an unknown address, and is asked once.
	before := p.Hits(extauthserver.Login)
	wrong := r.externalLogin("alice@example.com", "alice's old local password")
	unknown := r.externalLogin("nobody@example.com", "whatever it may be")
	if wrong.status != http.StatusUnauthorized || unknown.status != http.StatusUnauthorized ||
		!equalJSONValues(withoutInstance(wrong.body), withoutInstance(unknown.body)) ||
		wrong.body["type"] != "https://authledger.dev/problems/invalid-credentials" {
		t.Fatalf("wrong password %d %v, unknown address %d %v", wrong.status, wrong.body, unknown.status, unknown.body)
	}
	if got := p.Hits(extauthserver.Login) - before; got != 2 {
		t.Errorf("two refused logins made %d calls to the provider: a 401 must never be retried", got)
	}

	// Her provider password: linked to the account she has.
	a := r.externalLogin("ALICE@example.com", provAlice.Password)
	if a.status != http.StatusOK || a.userID != aliceID {
		t.Fatalf("external login of a local user: %d %v (want user %s)", a.status, a.body, aliceID)
	}
	me := r.me(a)
	if me["id"] != aliceID.String() || me["external_user_id"] != provAlice.ID || me["provider_email"] != provAlice.Email ||
		me["display_name"] != provAlice.Name || me["email"] != "alice@example.com" {
		t.Errorf("/v1/me of the linked user: %v", me)
	}
	// A second login finds her through the link, and changes nothing.
	if again := r.externalLogin("alice@example.com", provAlice.Password); again.status != http.StatusOK || again.userID != aliceID {
		t.Fatalf("second external login: %d %v", again.status, again.body)
	}

	// Bob has no local account: provisioned, without a password.
	b := r.externalLogin("bob@example.com", provBob.Password)
	if b.status != http.StatusOK || b.userID == aliceID {
		t.Fatalf("provisioning login: %d %v", b.status, b.body)
	}
	me = r.me(b)
	if me["external_user_id"] != provBob.ID || me["display_name"] != provBob.Name || me["email"] != "bob@example.com" {
		t.Errorf("/v1/me of the provisioned user: %v", me)
	}
	// The provider renames him: the next login brings the name.
	renamed := provBob
	renamed.Name = "Robert Provider"
	p.AddUser(renamed)
	b2 := r.externalLogin("bob@example.com", provBob.Password)
	if b2.status != http.StatusOK || b2.userID != b.userID {
		t.Fatalf("login after the rename: %d %v", b2.status, b2.body)
	}
	if me = r.me(b2); me["display_name"] != "Robert Provider" {
		t.Errorf("display name after the provider renamed him: %v", me["display_name"])
	}

	// Each session's provider tokens are in the vault; collect them all
	// before logout takes some away.
	var secrets []string
	for _, l := range []login{a, b, b2} {
		e, err := vlt.Get(t.Context(), l.session)
		if err != nil {
			t.Fatalf("vault of session %s: %v", l.session, err)
		}
		if e.UserID != l.userID || e.Tokens.AccessToken == "" || e.Tokens.IDToken == "" || e.Tokens.RefreshToken == "" {
			t.Fatalf("vault entry of session %s: user %s, tokens %v", l.session, e.UserID, e.Tokens)
		}
		secrets = append(secrets, e.Tokens.AccessToken, e.Tokens.IDToken, e.Tokens.RefreshToken)
	}

	// Logout takes the session's tokens away before it answers; the other
	// sessions keep theirs.
	if status, _, body := r.call("POST", "/v1/auth/logout", b.access, nil); status != http.StatusNoContent {
		t.Fatalf("logout: %d %v", status, body)
	}
	if _, err := vlt.Get(t.Context(), b.session); err == nil {
		t.Error("the vault still holds the tokens of a session logged out")
	}
	if _, err := vlt.Get(t.Context(), b2.session); err != nil {
		t.Errorf("the vault lost the tokens of another session: %v", err)
	}
	// DELETE of a session: the same.
	if status, _, body := r.call("DELETE", "/v1/auth/sessions/"+b2.session.String(), a.access, nil); status != http.StatusNotFound {
		t.Fatalf("deleting another user's session: %d %v", status, body)
	}
	if status, _, body := r.call("DELETE", "/v1/auth/sessions/"+a.session.String(), a.access, nil); status != http.StatusNoContent {
		t.Fatalf("delete session: %d %v", status, body)
	}
	if _, err := vlt.Get(t.Context(), a.session); err == nil {
		t.Error("the vault still holds the tokens of a deleted session")
	}

	// The log records the fingerprints (so the grep below reads what the
	// logins wrote) and never a token.
	log := eventLog(t, pool)
	if !strings.Contains(log, external.Fingerprint(secrets[0])) || !strings.Contains(log, "session.external_tokens_stored.v1") ||
		!strings.Contains(log, "user.external_identity_linked.v1") {
		t.Fatal("the log lacks the external logins' events: the search below would prove nothing")
	}
	logs := r.logs.String()
	if !strings.Contains(logs, "/v1/auth/login") {
		t.Fatal("the captured logs lack the logins: the search below would prove nothing")
	}
	for _, s := range secrets {
		// A JWT's signature alone is as unique as the token.
		parts := append([]string{s}, strings.Split(s, ".")[min(2, strings.Count(s, ".")):]...)
		for _, part := range parts {
			if len(part) < 16 {
				continue
			}
			if strings.Contains(log, part) {
				t.Errorf("the event log holds a provider token (%s)", external.Fingerprint(s))
			}
			if strings.Contains(logs, part) {
				t.Errorf("the service's logs hold a provider token (%s)", external.Fingerprint(s))
			}
		}
	}
}

// eventLog is every event's type, stream, data and metadata, as text.
func eventLog(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT type || ' ' || stream || ' ' || coalesce(data::text, '') || ' ' || coalesce(metadata::text, '') FROM events ORDER BY tx_id, seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Without provisioning, a provider's user with no local account is
// refused like a wrong password, and nothing is written for them.
func TestExternalLoginWithoutProvisioningRefusesStrangers(t *testing.T) {
	t.Parallel()
	p := extauthserver.Start(t, extauthserver.Config{Plain: true, Users: []extauthserver.User{provBob}})
	db := pgtest.NewDatabase(t)
	r := startService(t, externalEnv(t, p, db, nil))
	_, pool := testVault(t, db)
	l := r.externalLogin("bob@example.com", provBob.Password)
	if l.status != http.StatusUnauthorized || l.body["type"] != "https://authledger.dev/problems/invalid-credentials" {
		t.Fatalf("login of a provider user without a local account: %d %v", l.status, l.body)
	}
	if log := eventLog(t, pool); strings.Contains(log, "external_identity") || strings.Contains(log, "user.registered.v1") {
		t.Errorf("a refused login wrote to the log:\n%s", log)
	}
}

// The provider down: 503 auth-provider-unavailable with Retry-After
// without a fallback; with FALLBACK=local, users with a local password
// log in with it, and those without one (provisioned) get the 401 an
// unknown address gets.
func TestExternalProviderDown(t *testing.T) {
	t.Parallel()
	t.Run("no fallback", func(t *testing.T) {
		t.Parallel()
		p := extauthserver.Start(t, extauthserver.Config{Plain: true, Users: []extauthserver.User{provBob}})
		r := startService(t, externalEnv(t, p, pgtest.NewDatabase(t), nil))
		p.SetFault(extauthserver.Fault{Status: http.StatusServiceUnavailable})
		for _, email := range []string{"bob@example.com", "nobody@example.com"} {
			l := r.externalLogin(email, provBob.Password)
			if l.status != http.StatusServiceUnavailable || l.body["type"] != "https://authledger.dev/problems/auth-provider-unavailable" || l.header.Get("Retry-After") == "" {
				t.Errorf("%s with the provider down: %d %v Retry-After %q", email, l.status, l.body, l.header.Get("Retry-After"))
			}
		}
		// Enough failures open the breaker: logins fail at once, and the
		// readiness line says so without failing.
		deadline := time.Now().Add(20 * time.Second)
		for {
			status, raw := r.readyz()
			var body map[string]any
			_ = json.Unmarshal([]byte(raw), &body)
			checks, _ := body["checks"].(map[string]any)
			ext, _ := checks["external_auth"].(map[string]any)
			details, _ := ext["details"].(map[string]any)
			if status != http.StatusOK {
				t.Fatalf("/readyz with the provider down: %d %v", status, body)
			}
			if details["breaker"] == "open" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the breaker never opened: %v", ext)
			}
			r.externalLogin("bob@example.com", provBob.Password)
		}
		hits := p.Hits(extauthserver.Login)
		if l := r.externalLogin("bob@example.com", provBob.Password); l.status != http.StatusServiceUnavailable || l.header.Get("Retry-After") == "" {
			t.Errorf("with the breaker open: %d %v", l.status, l.body)
		}
		if p.Hits(extauthserver.Login) != hits {
			t.Error("a login reached the provider through an open breaker")
		}
	})
	t.Run("local fallback", func(t *testing.T) {
		t.Parallel()
		carol := extauthserver.User{ID: "ext-carol", Email: "carol@example.com", Name: "Carol", Password: "carol at the provider"}
		p := extauthserver.Start(t, extauthserver.Config{Plain: true, Users: []extauthserver.User{provBob, carol}})
		r := startService(t, externalEnv(t, p, pgtest.NewDatabase(t), map[string]string{
			"AUTHLEDGER_EXTERNAL_AUTH_FALLBACK": "local", "AUTHLEDGER_EXTERNAL_AUTH_PROVISION": "true"}))
		if status, _, body := r.call("POST", "/v1/auth/register", "", map[string]string{"email": "carol@example.com", "password": "carol's local password", "display_name": "Carol"}); status != http.StatusCreated {
			t.Fatalf("register: %d %v", status, body)
		}
		// Bob is provisioned while the provider is up: he has no local
		// password. Carol is linked and keeps hers.
		for _, u := range []extauthserver.User{provBob, carol} {
			if l := r.externalLogin(u.Email, u.Password); l.status != http.StatusOK {
				t.Fatalf("%s while the provider is up: %d %v", u.Email, l.status, l.body)
			}
		}
		// A provider answering outside its contract is no outage: no
		// fallback (a 403 for a disabled account must not let an old
		// local password in).
		p.SetFault(extauthserver.Fault{Status: http.StatusForbidden})
		if l := r.externalLogin("carol@example.com", "carol's local password"); l.status != http.StatusServiceUnavailable || l.body["type"] != "https://authledger.dev/problems/auth-provider-unavailable" {
			t.Errorf("provider failure (403) with a fallback configured: %d %v", l.status, l.body)
		}
		p.SetFault(extauthserver.Fault{Status: http.StatusBadGateway})
		c := r.externalLogin("carol@example.com", "carol's local password")
		if c.status != http.StatusOK {
			t.Fatalf("local fallback: %d %v", c.status, c.body)
		}
		if status, _, sessions := r.call("GET", "/v1/auth/sessions", c.access, nil, "X-Consistency-Token", c.header.Get("X-Consistency-Token")); status != http.StatusOK ||
			!hasSession(sessions, c.session, "password") {
			t.Errorf("the fallback session is not a password one: %d %v", status, sessions)
		}
		// The provider's password is not a local one; a user without a
		// local password and an unknown address answer alike.
		noLocal := r.externalLogin("bob@example.com", provBob.Password)
		unknown := r.externalLogin("nobody@example.com", provBob.Password)
		wrong := r.externalLogin("carol@example.com", carol.Password)
		for name, l := range map[string]login{"provisioned": noLocal, "unknown": unknown, "wrong local password": wrong} {
			if l.status != http.StatusUnauthorized || !equalJSONValues(withoutInstance(l.body), withoutInstance(unknown.body)) {
				t.Errorf("%s during the outage: %d %v", name, l.status, l.body)
			}
		}
	})
}

func hasSession(page map[string]any, id uuid.UUID, method string) bool {
	items, _ := page["items"].([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		if m["id"] == id.String() && m["method"] == method {
			return true
		}
	}
	return false
}

// A provider answering with a token we cannot verify (signed with a key
// it does not publish) is a provider failure: nothing is linked.
func TestExternalLoginRefusesAnUnverifiedToken(t *testing.T) {
	t.Parallel()
	p := extauthserver.Start(t, extauthserver.Config{Plain: true, Users: []extauthserver.User{provBob}})
	db := pgtest.NewDatabase(t)
	r := startService(t, externalEnv(t, p, db, map[string]string{"AUTHLEDGER_EXTERNAL_AUTH_PROVISION": "true"}))
	_, pool := testVault(t, db)
	p.SignWithWrongKey(true)
	if l := r.externalLogin("bob@example.com", provBob.Password); l.status != http.StatusServiceUnavailable || l.body["type"] != "https://authledger.dev/problems/auth-provider-unavailable" {
		t.Fatalf("login with a forged provider token: %d %v", l.status, l.body)
	}
	if log := eventLog(t, pool); strings.Contains(log, "external_identity") {
		t.Errorf("a forged token linked someone:\n%s", log)
	}
}

// equalJSONValues compares two decoded JSON documents.
func equalJSONValues(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// A revocation made elsewhere than in a logout (here the session limit
// revoking the oldest session) empties the vault too: the vault_release
// policy follows session.revoked.
func TestRevokedSessionsLoseTheirProviderTokens(t *testing.T) {
	t.Parallel()
	p := extauthserver.Start(t, extauthserver.Config{Plain: true, Users: []extauthserver.User{provBob}})
	db := pgtest.NewDatabase(t)
	r := startService(t, externalEnv(t, p, db, map[string]string{"AUTHLEDGER_EXTERNAL_AUTH_PROVISION": "true", "AUTHLEDGER_MAX_SESSIONS_PER_USER": "1"}))
	vlt, _ := testVault(t, db)
	first := r.externalLogin("bob@example.com", provBob.Password)
	second := r.externalLogin("bob@example.com", provBob.Password)
	if first.status != http.StatusOK || second.status != http.StatusOK {
		t.Fatalf("logins: %d %d", first.status, second.status)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := vlt.Get(t.Context(), first.session); errors.Is(err, vault.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tokens of the session the limit revoked are still in the vault")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := vlt.Get(t.Context(), second.session); err != nil {
		t.Errorf("the current session lost its tokens: %v", err)
	}
}

// The API accepts the provider's access tokens beside ours, for the user
// their subject is linked to; a forged, expired or foreign-audience token
// and an unlinked subject get the 401 of a bad token; keys that cannot be
// fetched answer 503 (the token may be valid).
func TestProviderTokensAreAcceptedForLinkedUsers(t *testing.T) {
	t.Parallel()
	p := extauthserver.Start(t, extauthserver.Config{Plain: true, Users: []extauthserver.User{provBob}})
	r := startService(t, externalEnv(t, p, pgtest.NewDatabase(t), map[string]string{"AUTHLEDGER_EXTERNAL_AUTH_PROVISION": "true"}))
	b := r.externalLogin("bob@example.com", provBob.Password)
	if b.status != http.StatusOK {
		t.Fatalf("login: %d %v", b.status, b.body)
	}
	consistency := b.header.Get("X-Consistency-Token")
	status, _, me := r.call("GET", "/v1/me", p.Token(provBob, extauthserver.TokenOptions{}), nil, "X-Consistency-Token", consistency)
	if status != http.StatusOK || me["id"] != b.userID.String() || me["external_user_id"] != provBob.ID {
		t.Fatalf("/v1/me with the provider's token: %d %v", status, me)
	}
	// Ours still works beside it.
	if status, _, me := r.call("GET", "/v1/me", b.access, nil); status != http.StatusOK || me["id"] != b.userID.String() {
		t.Fatalf("/v1/me with our token: %d %v", status, me)
	}
	stranger := extauthserver.User{ID: "ext-nobody", Email: "nobody@example.com", Name: "Nobody"}
	for name, tok := range map[string]string{
		"forged":           p.Token(provBob, extauthserver.TokenOptions{Key: extauthserver.NewKey(t)}),
		"expired":          p.Token(provBob, extauthserver.TokenOptions{TTL: -time.Minute}),
		"another audience": p.Token(provBob, extauthserver.TokenOptions{Audience: "another-application"}),
		"unlinked subject": p.Token(stranger, extauthserver.TokenOptions{}),
		"another issuer":   p.Token(provBob, extauthserver.TokenOptions{Issuer: "http://127.0.0.1:1/other"}),
	} {
		status, hdr, body := r.call("GET", "/v1/me", tok, nil)
		if status != http.StatusUnauthorized || body["type"] != "https://authledger.dev/problems/invalid-token" || hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s provider token: %d %v", name, status, body)
		}
	}

	// A provider whose keys cannot be fetched: 503, not 401.
	down := extauthserver.Start(t, extauthserver.Config{Plain: true, Users: []extauthserver.User{provBob}})
	r2 := startService(t, externalEnv(t, down, pgtest.NewDatabase(t), nil))
	down.SetOIDCFault(extauthserver.Fault{Status: http.StatusInternalServerError})
	status, hdr, body := r2.call("GET", "/v1/me", down.Token(provBob, extauthserver.TokenOptions{}), nil)
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Errorf("provider token with the provider's keys unavailable: %d %v", status, body)
	}
}

// The vault's refresher renews a session's provider tokens before they
// expire and the log records it (fingerprints only): /v1/me shows
// last_token_refresh.
func TestProviderTokensAreRenewedBeforeTheyExpire(t *testing.T) {
	t.Parallel()
	// Tokens of two minutes, inside the default five-minute buffer: due at
	// once.
	p := extauthserver.Start(t, extauthserver.Config{Plain: true, TokenTTL: 2 * time.Minute, RotateRefreshTokens: true, Users: []extauthserver.User{provBob}})
	db := pgtest.NewDatabase(t)
	r := startService(t, externalEnv(t, p, db, map[string]string{"AUTHLEDGER_EXTERNAL_AUTH_PROVISION": "true"}))
	vlt, pool := testVault(t, db)
	b := r.externalLogin("bob@example.com", provBob.Password)
	if b.status != http.StatusOK {
		t.Fatalf("login: %d %v", b.status, b.body)
	}
	first, err := vlt.Get(t.Context(), b.session)
	if err != nil {
		t.Fatal(err)
	}
	// The refresher pauses 15 s between passes that find nothing to do.
	deadline := time.Now().Add(45 * time.Second)
	var me map[string]any
	for {
		_, _, me = r.call("GET", "/v1/me", b.access, nil)
		if me["last_token_refresh"] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal shown after 45 s: %v (provider refreshes %d)", me, p.Hits(extauthserver.Refresh))
		}
		time.Sleep(200 * time.Millisecond)
	}
	renewed, err := vlt.Get(t.Context(), b.session)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Tokens.RefreshToken == first.Tokens.RefreshToken || renewed.RefreshedAt.IsZero() || p.Hits(extauthserver.Refresh) == 0 {
		t.Errorf("vault after the renewal: refreshed at %v, provider refreshes %d", renewed.RefreshedAt, p.Hits(extauthserver.Refresh))
	}
	log := eventLog(t, pool)
	if !strings.Contains(log, "session.external_tokens_refreshed.v1") || !strings.Contains(log, external.Fingerprint(renewed.Tokens.RefreshToken)) {
		t.Error("the log lacks the renewal's fingerprints")
	}
	for _, s := range []string{renewed.Tokens.AccessToken, renewed.Tokens.IDToken, renewed.Tokens.RefreshToken} {
		if strings.Contains(log, s) || strings.Contains(r.logs.String(), s) {
			t.Errorf("a renewed provider token is in the log or the logs (%s)", external.Fingerprint(s))
		}
	}
}

// `authledger external-auth check`: one login, a redacted report, exit 1
// when the login or a token check fails. The external settings are
// checked even with the flag off (a provider is validated before it is
// turned on).
func TestExternalAuthCheck(t *testing.T) {
	t.Parallel()
	p := extauthserver.Start(t, extauthserver.Config{Plain: true, Users: []extauthserver.User{provBob}})
	env := externalEnv(t, p, "postgres://nobody@127.0.0.1:1/none", map[string]string{"AUTHLEDGER_USE_EXTERNAL_AUTH": "off"})
	pw := func(s string) string {
		f := filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(f, []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	code, out, errOut := runCmd(t, env, "external-auth", "check", "-email", provBob.Email, "-password-file", pw(provBob.Password))
	if code != exitOK || !regexp.MustCompile(`status\s+200`).MatchString(out) || !regexp.MustCompile(`result\s+ok`).MatchString(out) ||
		!strings.Contains(out, provBob.ID) || !regexp.MustCompile(`access token\s+sha256:[0-9a-f]{64}\s+valid`).MatchString(out) ||
		!regexp.MustCompile(`field AccessToken\s+access_token\s+found`).MatchString(out) {
		t.Fatalf("check: %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out, "eyJ") || strings.Contains(out, provBob.Password) || strings.Contains(out, "rt_") {
		t.Errorf("the report shows a token or the password:\n%s", out)
	}
	if code, out, _ := runCmd(t, env, "external-auth", "check", "-email", provBob.Email, "-password-file", pw("wrong")); code != exitError || !strings.Contains(out, "invalid_credentials") {
		t.Errorf("wrong password: %d\n%s", code, out)
	}
	p.SignWithWrongKey(true)
	if code, out, _ := runCmd(t, env, "external-auth", "check", "-email", provBob.Email, "-password-file", pw(provBob.Password)); code != exitError || !strings.Contains(out, "INVALID") {
		t.Errorf("tokens signed with an unpublished key: %d\n%s", code, out)
	}
	bad := maps.Clone(env)
	bad["AUTHLEDGER_EXTERNAL_AUTH_URL"] = "http://"
	if code, _, errOut := runCmd(t, bad, "external-auth", "check", "-email", provBob.Email, "-password-file", pw(provBob.Password)); code != exitUsage || !strings.Contains(errOut, "AUTHLEDGER_EXTERNAL_AUTH_URL") {
		t.Errorf("a broken URL: %d %s", code, errOut)
	}
}

// `authledger users link`: a dry run reports and writes nothing; the run
// exports the affected users first, links them, and reports the rows
// without an account, the conflicts and the accounts without a row; the
// linked user's next external login finds the account.
func TestUsersLink(t *testing.T) {
	t.Parallel()
	ann := extauthserver.User{ID: "ext-ann", Email: "ann@example.com", Name: "Ann", Password: "ann at the provider"}
	p := extauthserver.Start(t, extauthserver.Config{Plain: true, Users: []extauthserver.User{ann}})
	db := pgtest.NewDatabase(t)
	env := externalEnv(t, p, db, nil)
	r := startService(t, env)
	ids := map[string]uuid.UUID{}
	for _, e := range []string{"ann@example.com", "ben@example.com", "cat@example.com", "dan@example.com"} {
		status, _, body := r.call("POST", "/v1/auth/register", "", map[string]string{"email": e, "password": "a local password", "display_name": "X"})
		if status != http.StatusCreated {
			t.Fatalf("register %s: %d %v", e, status, body)
		}
		ids[e] = uuid.MustParse(body["user_id"].(string))
	}
	// The profiles have caught up with the registrations (the report reads
	// them), as a read of the last one's write shows.
	_, pool := testVault(t, db)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM user_profiles`).Scan(&n); err == nil && n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the profiles never caught up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "links.csv")
	if err := os.WriteFile(csvPath, []byte("email,external_user_id\nANN@example.com,ext-ann\nben@example.com,ext-ben\nnobody@example.com,ext-x\ncat@example.com,ext-ann\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(t, env, "users", "link", "-from", csvPath, "-dry-run")
	if code != exitError || !strings.Contains(out, "would link 2, already linked 0, without a local account 1, failed 1") ||
		!strings.Contains(out, "no local account: line 4 nobody@example.com") || !strings.Contains(out, "no row: dan@example.com") {
		t.Fatalf("dry run: %d\n%s\n%s", code, out, errOut)
	}
	if log := eventLog(t, pool); strings.Contains(log, "external_identity") {
		t.Fatal("the dry run wrote links")
	}
	backup := filepath.Join(dir, "backup.jsonl")
	code, out, errOut = runCmd(t, env, "users", "link", "-from", csvPath, "-backup", backup)
	if code != exitError || !strings.Contains(out, "linked 2, already linked 0, without a local account 1, failed 1") ||
		!strings.Contains(out, "failed: line 5 cat@example.com") {
		t.Fatalf("run: %d\n%s\n%s", code, out, errOut)
	}
	raw, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(raw)), "\n"); len(lines) != 2 || !strings.Contains(string(raw), ids["ann@example.com"].String()) ||
		!strings.Contains(string(raw), `"has_password":true`) {
		t.Errorf("backup:\n%s", raw)
	}
	// Ann's provider login finds her account through the link.
	if l := r.externalLogin("ann@example.com", ann.Password); l.status != http.StatusOK || l.userID != ids["ann@example.com"] {
		t.Fatalf("Ann's external login after the link: %d %v", l.status, l.body)
	}
	// Again: nothing more to do; an existing backup is never overwritten.
	if code, out, _ := runCmd(t, env, "users", "link", "-from", csvPath, "-backup", backup); code != exitError || !strings.Contains(out, "linked 0, already linked 2") {
		t.Errorf("second run: %d\n%s", code, out)
	}
}

// Behind a TLS provider whose certificate no system root signs (a
// corporate proxy), AUTHLEDGER_EXTERNAL_AUTH_CA_FILE is what lets the
// client in.
func TestExternalAuthCAFile(t *testing.T) {
	t.Parallel()
	p := extauthserver.Start(t, extauthserver.Config{Users: []extauthserver.User{provBob}})
	env := externalEnv(t, p, "postgres://nobody@127.0.0.1:1/none", map[string]string{"AUTHLEDGER_EXTERNAL_AUTH_ALLOW_INSECURE": "false"})
	dir := t.TempDir()
	pw, ca := filepath.Join(dir, "pw"), filepath.Join(dir, "ca.pem")
	if err := errors.Join(os.WriteFile(pw, []byte(provBob.Password), 0o600), os.WriteFile(ca, p.CertificatePEM(), 0o600)); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCmd(t, env, "external-auth", "check", "-email", provBob.Email, "-password-file", pw); code != exitError || !strings.Contains(out, "FAILED") {
		t.Fatalf("without the CA file: %d\n%s", code, out)
	}
	env["AUTHLEDGER_EXTERNAL_AUTH_CA_FILE"] = ca
	if code, out, errOut := runCmd(t, env, "external-auth", "check", "-email", provBob.Email, "-password-file", pw); code != exitOK {
		t.Fatalf("with the CA file: %d\n%s\n%s", code, out, errOut)
	}
}

// A provider that hangs: each attempt is cut at AUTHLEDGER_EXTERNAL_AUTH_TIMEOUT,
// and the login answers 503 auth-provider-unavailable well before the
// client would give up.
func TestSlowProviderTimesOut(t *testing.T) {
	t.Parallel()
	p := extauthserver.Start(t, extauthserver.Config{Plain: true, Users: []extauthserver.User{provBob}})
	r := startService(t, externalEnv(t, p, pgtest.NewDatabase(t), map[string]string{"AUTHLEDGER_EXTERNAL_AUTH_TIMEOUT": "200ms"}))
	p.SetFault(extauthserver.Fault{Hang: true})
	// Without the bound the request would hang until the test client's
	// own timeout (30 s) and fail.
	l := r.externalLogin("bob@example.com", provBob.Password)
	if l.status != http.StatusServiceUnavailable || l.body["type"] != "https://authledger.dev/problems/auth-provider-unavailable" || l.header.Get("Retry-After") == "" {
		t.Fatalf("hanging provider: %d %v", l.status, l.body)
	}
	if got := p.Hits(extauthserver.Login); got != 3 {
		t.Errorf("%d attempts, want 3 (timeouts are retried)", got)
	}
}

// Tokens the provider will no longer renew (it revoked the refresh token)
// end the session: the refresher gives up, the session is revoked with the
// reason external_refresh_failed (its access token stops working), and the
// vault forgets its tokens.
func TestASessionWhoseTokensCannotBeRenewedEnds(t *testing.T) {
	t.Parallel()
	p := extauthserver.Start(t, extauthserver.Config{Plain: true, TokenTTL: 2 * time.Minute, Users: []extauthserver.User{provBob}})
	db := pgtest.NewDatabase(t)
	r := startService(t, externalEnv(t, p, db, map[string]string{"AUTHLEDGER_EXTERNAL_AUTH_PROVISION": "true", "AUTHLEDGER_USER_RATE_LIMIT_PER_SECOND": "0"}))
	vlt, pool := testVault(t, db)
	b := r.externalLogin("bob@example.com", provBob.Password)
	if b.status != http.StatusOK {
		t.Fatalf("login: %d %v", b.status, b.body)
	}
	p.RevokeRefreshTokens()
	// The refresher pauses 15 s between passes that find nothing to do.
	rejectedWithin(t, r, "the session whose tokens cannot be renewed", b.access, 45*time.Second)
	if _, err := vlt.Get(t.Context(), b.session); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("the vault still holds the tokens of the ended session: %v", err)
	}
	if log := eventLog(t, pool); !strings.Contains(log, `"reason": "external_refresh_failed"`) {
		t.Error("the log does not say why the session ended")
	}
}
