package console

// session.go is the browser's side of a session of the log: the sealed
// cookie that carries its tokens, and their refresh.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// cookieName is the session cookie's name: with the __Host- prefix over
// https, which binds it to this host, path / and Secure.
func cookieName(secure bool) string {
	if secure {
		return "__Host-authledger_console"
	}
	return "authledger_console"
}

// deviceCookie keeps the login's device token (the API's known-device
// mark, docs/login-throttling.md) for the console's sign-in form.
const deviceCookie = "authledger_console_device"

// state is what the session cookie holds, sealed. A signed-out visitor
// has a state too: its CSRF token protects the sign-in and register
// forms.
type state struct {
	CSRF    string `json:"c"`
	Access  string `json:"a,omitempty"`
	Refresh string `json:"r,omitempty"`
	Session string `json:"s,omitempty"`
	// Expires is the access token's expiry (Unix seconds), from the
	// token response's expires_in: read without parsing the JWT.
	Expires int64 `json:"e,omitempty"`
	// MFA is the API's mfa_token of a sign-in stopped at its first
	// factor: kept here, sealed and HttpOnly, for the second step's page,
	// never in a form field a script could read. MFAMethods are the
	// methods it allows (comma-joined, so that a state stays comparable),
	// MFAEnrol says it only sets up a first factor, MFAExpires is its
	// expiry (Unix seconds).
	MFA        string `json:"m,omitempty"`
	MFAMethods string `json:"mm,omitempty"`
	MFAEnrol   bool   `json:"me,omitempty"`
	MFAExpires int64  `json:"mx,omitempty"`
}

func (s state) signedIn() bool { return s.Refresh != "" }

// sealer seals states with AES-256-GCM; the additional data binds a
// ciphertext to the cookie's name, so nothing sealed for another purpose
// under the same key opens as a session.
type sealer struct {
	aead cipher.AEAD
	name string
}

func newSealer(key []byte, name string) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, name: name}, nil
}

func (s *sealer) seal(st state) (string, error) {
	plain, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(s.name))), nil
}

var errBadCookie = errors.New("console: the session cookie does not open")

func (s *sealer) open(v string) (state, error) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return state{}, errBadCookie
	}
	plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(s.name))
	if err != nil {
		return state{}, errBadCookie
	}
	var st state
	if err := json.Unmarshal(plain, &st); err != nil {
		return state{}, errBadCookie
	}
	return st, nil
}

// Seal and Open are the cookie's codec, for tests that must hand the
// browser a session in a given state (an expired access token).
func (c *Console) Seal(access, refresh, session string, expires time.Time, csrf string) (string, error) {
	return c.cookies.seal(state{CSRF: csrf, Access: access, Refresh: refresh, Session: session, Expires: expires.Unix()})
}

// Open opens a session cookie's value: its access and refresh tokens,
// session id and CSRF token.
func (c *Console) Open(v string) (access, refresh, session, csrf string, err error) {
	st, err := c.cookies.open(v)
	return st.Access, st.Refresh, st.Session, st.CSRF, err
}

// CookieName is the session cookie's name.
func (c *Console) CookieName() string { return c.cookies.name }

const stateKey = "console.state"

// readState is the request's state (a fresh signed-out one when the
// cookie is missing or does not open), kept on the context for the
// handlers after it.
func (c *Console) readState(ctx *gin.Context) state {
	if v, ok := ctx.Get(stateKey); ok {
		return v.(state)
	}
	var st state
	if v, err := ctx.Cookie(c.cookies.name); err == nil {
		st, _ = c.cookies.open(v)
	}
	if st.CSRF == "" {
		st = state{CSRF: randomToken()}
		c.writeState(ctx, st)
	}
	ctx.Set(stateKey, st)
	return st
}

// writeState sets the cookie (and the context's copy).
func (c *Console) writeState(ctx *gin.Context, st state) {
	ctx.Set(stateKey, st)
	v, err := c.cookies.seal(st)
	if err != nil {
		c.cfg.Logger.Error("console: seal the session cookie", "err", err)
		return
	}
	http.SetCookie(ctx.Writer, &http.Cookie{ //nolint:gosec // Secure follows AUTHLEDGER_PUBLIC_URL (https); HttpOnly and SameSite=Strict always
		Name: c.cookies.name, Value: v, Path: "/", MaxAge: int(c.cfg.SessionMaxAge.Seconds()),
		HttpOnly: true, Secure: c.cfg.Secure, SameSite: http.SameSiteStrictMode,
	})
}

// tokens are a token response's.
type tokens struct {
	Access    string `json:"access_token"`
	Refresh   string `json:"refresh_token"`
	ExpiresIn int64  `json:"expires_in"`
	SessionID string `json:"session_id"`
	Device    string `json:"device_token"`
	User      struct {
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
	} `json:"user"`
}

func (c *Console) signedInState(csrf string, t tokens) state {
	return state{CSRF: csrf, Access: t.Access, Refresh: t.Refresh, Session: t.SessionID,
		Expires: c.cfg.Now().Add(time.Duration(t.ExpiresIn) * time.Second).Unix()}
}

// refreshGroup makes one refresh of a refresh token, however many
// requests of one browser find its access token expired at once: a
// refresh token presented twice revokes its whole session (reuse
// detection, RFC 9700 §4.14), and a page's polling and navigation do
// overlap. A finished refresh is remembered for refreshGrace, so that a
// request that left the browser with the old cookie before the new one
// arrived gets the same new tokens. This holds within one instance; see
// docs/adr/0036 for several.
type refreshGroup struct {
	now   func() time.Time
	mu    sync.Mutex
	calls map[[32]byte]*refreshCall
}

type refreshCall struct {
	done   chan struct{}
	tokens tokens
	err    error
	ended  time.Time
}

const refreshGrace = 30 * time.Second

func newRefreshGroup(now func() time.Time) *refreshGroup {
	return &refreshGroup{now: now, calls: map[[32]byte]*refreshCall{}}
}

// do runs refresh once per refresh token.
func (g *refreshGroup) do(refreshToken string, refresh func() (tokens, error)) (tokens, error) {
	key := sha256.Sum256([]byte(refreshToken))
	g.mu.Lock()
	now := g.now()
	for k, call := range g.calls {
		if !call.ended.IsZero() && now.Sub(call.ended) > refreshGrace {
			delete(g.calls, k)
		}
	}
	if call, ok := g.calls[key]; ok {
		g.mu.Unlock()
		<-call.done
		return call.tokens, call.err
	}
	call := &refreshCall{done: make(chan struct{})}
	g.calls[key] = call
	g.mu.Unlock()

	call.tokens, call.err = refresh()
	g.mu.Lock()
	call.ended = g.now()
	if call.err != nil && !errors.Is(call.err, errSessionOver) {
		// A transient failure (the store down) is not remembered: the
		// next request tries again with the same, still valid, token.
		delete(g.calls, key)
	}
	g.mu.Unlock()
	close(call.done)
	return call.tokens, call.err
}

// randomToken is a fresh CSRF token (26 characters of base32, 128 bits).
func randomToken() string { return rand.Text() }
