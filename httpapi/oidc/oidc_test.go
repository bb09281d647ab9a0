package oidc

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/gin-gonic/gin"
)

var h = &handlers{d: Deps{Key: []byte("0123456789abcdef0123456789abcdef"), PublicURL: "https://id.example/base",
	AllowedRedirects: []string{"https://spa.example/cb"}}}

// The nonce and the PKCE verifier are functions of the state and the key
// alone (the callback recomputes them), distinct from each other and from
// another state's, and the verifier is a valid RFC 7636 one.
func TestDerivedNonceAndVerifier(t *testing.T) {
	nonce, verifier := h.derive("nonce", "state-1"), h.derive("pkce", "state-1")
	if nonce != h.derive("nonce", "state-1") || verifier != h.derive("pkce", "state-1") {
		t.Fatal("not deterministic")
	}
	if nonce == verifier || verifier == h.derive("pkce", "state-2") {
		t.Fatal("purposes or states collide")
	}
	other := &handlers{d: Deps{Key: []byte("another key of at least 32 bytes!!")}}
	if other.derive("pkce", "state-1") == verifier {
		t.Fatal("the key does not matter")
	}
	if !regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`).MatchString(verifier) {
		t.Fatalf("verifier %q is not RFC 7636", verifier)
	}
	sum := sha256.Sum256([]byte(verifier))
	if base64.RawURLEncoding.EncodeToString(sum[:]) == verifier {
		t.Fatal("the challenge is the verifier")
	}
}

// The cookie vouches for exactly its state, for its provider.
func TestFlowCookie(t *testing.T) {
	w := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(w)
	c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
	h.setCookie(c, "mock", "state-1")
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	ck := cookies[0]
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/base/v1/auth/oidc/mock/callback" || ck.MaxAge != 600 {
		t.Fatalf("cookie %+v", ck)
	}
	check := func(provider, state string, cookie *http.Cookie) bool {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodGet, "/", nil)
		c.Request.AddCookie(cookie)
		return h.browserState(c, provider, state)
	}
	if !check("mock", "state-1", ck) {
		t.Fatal("the cookie's own state is refused")
	}
	if check("mock", "state-2", ck) {
		t.Fatal("another state accepted")
	}
	forged := *ck
	forged.Value = "state-2." + h.derive("cookie mock", "state-1")
	if check("mock", "state-2", &forged) {
		t.Fatal("a forged cookie accepted")
	}
	renamed := *ck
	renamed.Name = cookieName("other")
	if check("other", "state-1", &renamed) {
		t.Fatal("another provider's cookie accepted")
	}
}

func TestRedirectAllowlistIsExact(t *testing.T) {
	for raw, want := range map[string]bool{
		"https://spa.example/cb":                       true,
		"https://spa.example/cb/":                      false,
		"https://spa.example/cb?x=1":                   false,
		"https://spa.example/cb#frag":                  false,
		"https://spa.example.evil/cb":                  false,
		"https://spa.example/cb/../evil":               false,
		"//spa.example/cb":                             false,
		"":                                             false,
		"https://evil.example/?https://spa.example/cb": false,
	} {
		if h.redirectAllowed(raw) != want {
			t.Errorf("%q: %v", raw, !want)
		}
	}
}
