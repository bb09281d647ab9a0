package apikey_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/authledger/authledger/auth/apikey"
	domain "github.com/authledger/authledger/domain/apikey"
)

func TestSecretRoundTripsAndRedacts(t *testing.T) {
	t.Parallel()
	s, err := apikey.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	raw := s.Encode()
	if !apikey.IsKey(raw) || len(raw) != 79 {
		t.Fatalf("encoded %q", raw)
	}
	back, err := apikey.ParseSecret(raw)
	if err != nil || back != s {
		t.Fatalf("parse: %v", err)
	}
	key := []byte(strings.Repeat("k", 32))
	if !back.Matches(key, s.Digest(key)) || back.Matches([]byte(strings.Repeat("o", 32)), s.Digest(key)) {
		t.Fatal("digest comparison")
	}
	secret := raw[36:]
	for _, shown := range []string{s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintf("%#v", s), s.Digest(key)} {
		if strings.Contains(shown, secret) {
			t.Errorf("%q shows the secret", shown)
		}
	}
	other, _ := apikey.NewSecret()
	if other.ID() == s.ID() || other.Encode()[36:] == secret {
		t.Fatal("two keys alike")
	}
}

func TestParseSecretIsStrict(t *testing.T) {
	t.Parallel()
	s, _ := apikey.NewSecret()
	raw := s.Encode()
	for name, bad := range map[string]string{
		"empty":          "",
		"no prefix":      "xx" + raw[2:],
		"short":          raw[:len(raw)-1],
		"long":           raw + "A",
		"upper-case id":  raw[:3] + strings.ToUpper(raw[3:35]) + raw[35:],
		"no separator":   raw[:35] + "." + raw[36:],
		"not base64url":  raw[:len(raw)-1] + "+",
		"a JWT":          "eyJhbGciOiJFUzI1NiJ9.e30.sig",
		"hex id garbage": raw[:3] + strings.Repeat("z", 32) + raw[35:],
	} {
		if _, err := apikey.ParseSecret(bad); !errors.Is(err, domain.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
