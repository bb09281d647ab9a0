package token_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/token"
)

func TestRefreshTokenRoundTrip(t *testing.T) {
	t.Parallel()
	sid := uuid.New()
	a, err := token.NewRefreshToken(sid)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := token.NewRefreshToken(sid)
	if a.Encode() == b.Encode() {
		t.Fatal("two tokens are equal")
	}
	s := a.Encode()
	if len(s) != 80 || !strings.HasPrefix(s, sid.String()+".") {
		t.Fatalf("wire form %q", s)
	}
	p, err := token.ParseRefreshToken(s)
	if err != nil {
		t.Fatal(err)
	}
	if p.SessionID() != sid || p.Encode() != s {
		t.Fatal("parse does not reverse encode")
	}
	if p.Digest() != sha256.Sum256([]byte(s)) || !p.Matches(a.Digest()) || p.Matches(b.Digest()) {
		t.Fatal("digest")
	}
	for _, shown := range []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", a, a, a, a), slog.AnyValue(a).Resolve().String()} {
		if strings.Contains(shown, s[37:]) {
			t.Fatalf("secret leaks through formatting: %s", shown)
		}
	}
}

func TestParseRefreshTokenIsStrict(t *testing.T) {
	t.Parallel()
	good, _ := token.NewRefreshToken(uuid.New())
	s := good.Encode()
	secret := s[37:]
	for name, bad := range map[string]string{
		"empty":           "",
		"upper-case uuid": strings.ToUpper(s[:36]) + s[36:],
		"no dot":          s[:36] + "x" + s[37:],
		"padded":          s + "=",
		"short secret":    s[:79],
		"long secret":     s + "A",
		"std alphabet":    s[:37] + strings.NewReplacer("-", "+", "_", "/").Replace(secret[:42]) + "+",
		"stray bits":      s[:79] + flipLast(secret[42]),
		"nil session":     uuid.Nil.String() + "." + secret,
		"braced uuid":     "{" + s[:35] + "." + secret,
		"spaces":          " " + s[1:],
	} {
		if _, err := token.ParseRefreshToken(bad); !errors.Is(err, token.ErrInvalidRefreshToken) {
			t.Errorf("%s: %q parsed (%v)", name, bad, err)
		}
	}
	if _, err := token.NewRefreshToken(uuid.Nil); err == nil {
		t.Fatal("token for the nil session")
	}
}

// flipLast changes the final base64url character so that its low bits,
// which a 32-byte value does not use, are set.
func flipLast(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[i|1])
}
