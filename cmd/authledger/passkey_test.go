package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The relying party of the passkey tests: the authenticator hashes the
// id, the client data carries the origin; neither needs DNS.
const (
	passkeyRPID   = "id.example"
	passkeyOrigin = "https://id.example"
)

var b64 = base64.RawURLEncoding

// softAuthenticator is a software WebAuthn authenticator speaking the
// wire format a browser hands the server (WebAuthn L3 §5, §6): a P-256
// key, "none" attestation, a signature counter. Tests steer what a
// hardware key cannot: the origin the client reports, the counter (a
// clone), the user-verified flag.
type softAuthenticator struct {
	t          *testing.T
	id         []byte
	key        *ecdsa.PrivateKey
	counter    uint32
	userHandle []byte
}

func newSoftAuthenticator(t *testing.T) *softAuthenticator {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	return &softAuthenticator{t: t, id: id, key: key}
}

func (a *softAuthenticator) cbor(v any) []byte {
	a.t.Helper()
	em, err := cbor.CTAP2EncOptions().EncMode()
	if err != nil {
		a.t.Fatal(err)
	}
	b, err := em.Marshal(v)
	if err != nil {
		a.t.Fatal(err)
	}
	return b
}

// publicKeyOf reads options["publicKey"][field] as a string.
func publicKeyOf(t *testing.T, options map[string]any, field string) string {
	t.Helper()
	pk, ok := options["publicKey"].(map[string]any)
	if !ok {
		t.Fatalf("options without publicKey: %v", options)
	}
	s, _ := pk[field].(string)
	return s
}

func clientData(t *testing.T, typ, challenge, origin string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	flagUP = 0x01
	flagUV = 0x04
	flagAT = 0x40
)

func (a *softAuthenticator) authData(flags byte) []byte {
	rp := sha256.Sum256([]byte(passkeyRPID))
	out := append(rp[:], flags)
	return binary.BigEndian.AppendUint32(out, a.counter)
}

// create answers creation options as navigator.credentials.create would.
func (a *softAuthenticator) create(options map[string]any, origin string) map[string]any {
	a.t.Helper()
	user, _ := options["publicKey"].(map[string]any)["user"].(map[string]any)
	handle, err := b64.DecodeString(user["id"].(string))
	if err != nil {
		a.t.Fatalf("user id: %v", err)
	}
	a.userHandle = handle
	pub, err := a.key.PublicKey.ECDH()
	if err != nil {
		a.t.Fatal(err)
	}
	raw := pub.Bytes() // 0x04 || x || y
	cose := a.cbor(map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:]})
	data := a.authData(flagUP | flagUV | flagAT)
	data = append(data, make([]byte, 16)...) // AAGUID: none
	data = binary.BigEndian.AppendUint16(data, uint16(len(a.id)))
	data = append(append(data, a.id...), cose...)
	att := a.cbor(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": data})
	cd := clientData(a.t, "webauthn.create", publicKeyOf(a.t, options, "challenge"), origin)
	return map[string]any{"id": b64.EncodeToString(a.id), "rawId": b64.EncodeToString(a.id), "type": "public-key",
		"response":               map[string]any{"clientDataJSON": b64.EncodeToString(cd), "attestationObject": b64.EncodeToString(att), "transports": []string{"internal"}},
		"clientExtensionResults": map[string]any{}}
}

// get answers request options as navigator.credentials.get would, the
// counter moved on by one (as hardware does) unless the test set it.
func (a *softAuthenticator) get(options map[string]any, origin string, flags byte) map[string]any {
	a.t.Helper()
	a.counter++
	data := a.authData(flags)
	cd := clientData(a.t, "webauthn.get", publicKeyOf(a.t, options, "challenge"), origin)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(slices.Clone(data), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		a.t.Fatal(err)
	}
	return map[string]any{"id": b64.EncodeToString(a.id), "rawId": b64.EncodeToString(a.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(data),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(a.userHandle)},
		"clientExtensionResults": map[string]any{}}
}

func startPasskeys(t *testing.T) *accountEnv {
	return startAccount(t, map[string]string{"AUTHLEDGER_WEBAUTHN_RP_ID": passkeyRPID, "AUTHLEDGER_WEBAUTHN_ORIGINS": passkeyOrigin})
}

// registerPasskey runs the registration ceremony on the session of tok.
func (e *accountEnv) registerPasskey(tok string, a *softAuthenticator) map[string]any {
	e.t.Helper()
	status, _, options := e.call("POST", "/v1/me/mfa/webauthn/register/begin", tok, nil)
	if status != http.StatusOK {
		e.t.Fatalf("register begin: %d %v", status, options)
	}
	status, _, body := e.call("POST", "/v1/me/mfa/webauthn/register/finish", tok, map[string]any{"name": "Laptop", "credential": a.create(options, passkeyOrigin)})
	if status != http.StatusCreated {
		e.t.Fatalf("register finish: %d %v", status, body)
	}
	return body
}

func (e *accountEnv) passkeyOptions(path string, body any) map[string]any {
	e.t.Helper()
	status, h, options := e.call("POST", path, "", body)
	if status != http.StatusOK || h.Get("Cache-Control") != "no-store" {
		e.t.Fatalf("%s: %d %v", path, status, options)
	}
	return options
}

func (e *accountEnv) verifyPasskey(tok string, assertion map[string]any) (int, map[string]any) {
	e.t.Helper()
	status, _, body := e.call("POST", "/v1/auth/mfa/verify", "", map[string]any{"mfa_token": tok, "method": "webauthn", "credential": assertion})
	return status, body
}

// Registration through the real server with a software authenticator:
// the options name the relying party and ask for a discoverable key; a
// wrong origin is refused and spends the challenge (its retry with the
// right origin is refused too); the credential becomes a listed
// method, with the first backup codes, its public key in the log; a
// replayed registration is refused.
func TestPasskeyRegistrationThroughTheRealServer(t *testing.T) {
	t.Parallel()
	e := startPasskeys(t)
	e.register("pia@example.com")
	_, first := e.login("pia@example.com", accountPassword)
	tok := first["access_token"].(string)
	a := newSoftAuthenticator(t)

	status, _, options := e.call("POST", "/v1/me/mfa/webauthn/register/begin", tok, nil)
	if status != http.StatusOK || !strings.Contains(jsonString(options), `"id":"id.example"`) || !strings.Contains(jsonString(options), `"residentKey":"required"`) {
		t.Fatalf("creation options: %d %v", status, options)
	}
	status, _, body := e.call("POST", "/v1/me/mfa/webauthn/register/finish", tok, map[string]any{"credential": a.create(options, "https://evil.example")})
	if status != http.StatusBadRequest || slugOf(body) != "invalid-passkey" {
		t.Fatalf("wrong origin: %d %v", status, body)
	}
	status, _, body = e.call("POST", "/v1/me/mfa/webauthn/register/finish", tok, map[string]any{"credential": a.create(options, passkeyOrigin)})
	if status != http.StatusBadRequest || slugOf(body) != "invalid-passkey" {
		t.Fatalf("the spent challenge again: %d %v", status, body)
	}
	status, _, options = e.call("POST", "/v1/me/mfa/webauthn/register/begin", tok, nil)
	if status != http.StatusOK {
		t.Fatalf("begin again: %d %v", status, options)
	}
	cred := a.create(options, passkeyOrigin)
	status, _, body = e.call("POST", "/v1/me/mfa/webauthn/register/finish", tok, map[string]any{"name": "Laptop", "credential": cred})
	if status != http.StatusCreated || body["type"] != "webauthn" || body["name"] != "Laptop" || len(body["backup_codes"].([]any)) != 10 {
		t.Fatalf("finish: %d %v", status, body)
	}
	// Replayed: the password session no longer may (the user has a
	// factor now), and nothing is recorded twice (counted below).
	status, _, again := e.call("POST", "/v1/me/mfa/webauthn/register/finish", tok, map[string]any{"credential": cred})
	if status != http.StatusUnauthorized || slugOf(again) != "step-up-required" {
		t.Fatalf("replayed registration: %d %v", status, again)
	}
	status, _, list := e.call("GET", "/v1/me/mfa", tok, nil)
	if status != http.StatusOK || !strings.Contains(jsonString(list), `"type":"webauthn"`) || !strings.Contains(jsonString(list), `"name":"Laptop"`) {
		t.Fatalf("list: %d %v", status, list)
	}
	// Adding another now needs a step-up: the password session may not.
	if status, _, body := e.call("POST", "/v1/me/mfa/webauthn/register/begin", tok, nil); status != http.StatusUnauthorized || slugOf(body) != "step-up-required" {
		t.Fatalf("second passkey without a step-up: %d %v", status, body)
	}
	if n := count(t, e.db, "mfa.passkey_added.v1"); n != 1 {
		t.Fatalf("%d passkey_added events", n)
	}
	// No challenge is kept in clear: the table holds digests.
	pool, err := pgxpool.New(context.Background(), e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var clear int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM webauthn_challenges WHERE session::text LIKE '%' || $1 || '%'`,
		publicKeyOf(t, options, "challenge")).Scan(&clear); err != nil || clear != 0 {
		t.Fatalf("challenge in clear: %d %v", clear, err)
	}
}

// A passkey as second factor: the login's methods name webauthn; the
// assertion completes it with amr pwd+hwk, once; a replayed assertion,
// a wrong origin and a counter that went back (a cloned key) are each
// refused as a wrong code; the passkey's session may remove it.
func TestPasskeySecondFactorThroughTheRealServer(t *testing.T) {
	t.Parallel()
	e := startPasskeys(t)
	e.register("sam@example.com")
	_, first := e.login("sam@example.com", accountPassword)
	a := newSoftAuthenticator(t)
	reg := e.registerPasskey(first["access_token"].(string), a)

	status, _, body := e.call("POST", "/v1/auth/login", "", map[string]string{"email": "sam@example.com", "password": accountPassword})
	if status != http.StatusUnauthorized || slugOf(body) != "mfa-required" || !slices.Contains(toStrings(body["methods"]), "webauthn") {
		t.Fatalf("login: %d %v", status, body)
	}
	tok := body["mfa_token"].(string)
	options := e.passkeyOptions("/v1/auth/mfa/webauthn/begin", map[string]string{"mfa_token": tok})
	if !strings.Contains(jsonString(options), b64.EncodeToString(a.id)) {
		t.Fatalf("allow list without the credential: %v", options)
	}
	// A wrong origin: refused, and that ceremony is spent.
	if status, body := e.verifyPasskey(tok, a.get(options, "https://evil.example", flagUP|flagUV)); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-code" {
		t.Fatalf("wrong origin: %d %v", status, body)
	}
	options = e.passkeyOptions("/v1/auth/mfa/webauthn/begin", map[string]string{"mfa_token": tok})
	assertion := a.get(options, passkeyOrigin, flagUP)
	status, done := e.verifyPasskey(tok, assertion)
	if status != http.StatusOK || !slices.Equal(amrOf(t, done["access_token"].(string)), []string{"pwd", "hwk"}) {
		t.Fatalf("verify: %d %v", status, done)
	}
	// The same assertion on a new login: its challenge is spent.
	tok2 := e.mfaLogin("sam@example.com", "mfa-required")
	if status, body := e.verifyPasskey(tok2, assertion); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-code" {
		t.Fatalf("replayed assertion: %d %v", status, body)
	}
	// A clone: a valid signature over a counter not above the stored one.
	options = e.passkeyOptions("/v1/auth/mfa/webauthn/begin", map[string]string{"mfa_token": tok2})
	a.counter -= 2
	if status, body := e.verifyPasskey(tok2, a.get(options, passkeyOrigin, flagUP)); status != http.StatusUnauthorized || slugOf(body) != "invalid-mfa-code" {
		t.Fatalf("cloned authenticator: %d %v", status, body)
	}
	a.counter += 5
	options = e.passkeyOptions("/v1/auth/mfa/webauthn/begin", map[string]string{"mfa_token": tok2})
	status, done = e.verifyPasskey(tok2, a.get(options, passkeyOrigin, flagUP))
	if status != http.StatusOK {
		t.Fatalf("the genuine key after the clone: %d %v", status, done)
	}
	// The passkey login is a step-up: it may remove the passkey.
	if status, _, body := e.call("DELETE", "/v1/me/mfa/"+reg["method_id"].(string), done["access_token"].(string), nil); status != http.StatusNoContent {
		t.Fatalf("remove: %d %v", status, body)
	}
	if status, body := e.login("sam@example.com", accountPassword); status != http.StatusOK {
		t.Fatalf("password login after removal: %d %v", status, body)
	}
}

// Passwordless: options name no user and require user verification;
// the assertion logs in with amr hwk; a replay, a wrong origin, a key
// that did not verify the user, a cloned counter and a credential of no
// account all get the one same answer.
func TestPasswordlessPasskeyLoginThroughTheRealServer(t *testing.T) {
	t.Parallel()
	e := startPasskeys(t)
	e.register("max@example.com")
	_, first := e.login("max@example.com", accountPassword)
	a := newSoftAuthenticator(t)
	e.registerPasskey(first["access_token"].(string), a)

	options := e.passkeyOptions("/v1/auth/passkey/begin", nil)
	if s := jsonString(options); strings.Contains(s, "allowCredentials") || !strings.Contains(s, `"userVerification":"required"`) {
		t.Fatalf("passwordless options: %v", options)
	}
	assertion := a.get(options, passkeyOrigin, flagUP|flagUV)
	status, _, done := e.call("POST", "/v1/auth/passkey/finish", "", map[string]any{"credential": assertion})
	if status != http.StatusOK || !slices.Equal(amrOf(t, done["access_token"].(string)), []string{"hwk"}) || done["refresh_token"] == "" {
		t.Fatalf("passwordless: %d %v", status, done)
	}
	waitStatus(t, e.running, "GET", "/v1/me", done["access_token"].(string), http.StatusOK)

	refused := func(name string, assertion map[string]any) map[string]any {
		t.Helper()
		status, _, body := e.call("POST", "/v1/auth/passkey/finish", "", map[string]any{"credential": assertion})
		if status != http.StatusUnauthorized || slugOf(body) != "invalid-passkey-login" {
			t.Fatalf("%s: %d %v", name, status, body)
		}
		delete(body, "instance")
		delete(body, "request_id")
		return body
	}
	replay := refused("replayed assertion", assertion)
	refused("wrong origin", a.get(e.passkeyOptions("/v1/auth/passkey/begin", nil), "https://evil.example", flagUP|flagUV))
	refused("no user verification", a.get(e.passkeyOptions("/v1/auth/passkey/begin", nil), passkeyOrigin, flagUP))
	a.counter -= 3
	refused("cloned authenticator", a.get(e.passkeyOptions("/v1/auth/passkey/begin", nil), passkeyOrigin, flagUP|flagUV))
	// A key of no account (a random user handle): the same answer.
	stranger := newSoftAuthenticator(t)
	stranger.userHandle = make([]byte, 16)
	if _, err := rand.Read(stranger.userHandle); err != nil {
		t.Fatal(err)
	}
	unknown := refused("unknown credential", stranger.get(e.passkeyOptions("/v1/auth/passkey/begin", nil), passkeyOrigin, flagUP|flagUV))
	if jsonString(unknown) != jsonString(replay) {
		t.Fatalf("an unknown account answers %v, a replay %v", unknown, replay)
	}
	if status, _, body := e.call("POST", "/v1/auth/passkey/finish", "", map[string]any{"credential": map[string]any{"id": "x"}}); status != http.StatusUnauthorized || slugOf(body) != "invalid-passkey-login" {
		t.Fatalf("malformed: %d %v", status, body)
	}
	a.counter += 10
	status, _, done = e.call("POST", "/v1/auth/passkey/finish", "", map[string]any{"credential": a.get(e.passkeyOptions("/v1/auth/passkey/begin", nil), passkeyOrigin, flagUP|flagUV)})
	if status != http.StatusOK {
		t.Fatalf("the genuine key again: %d %v", status, done)
	}
}
