package password_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/authledger/authledger/auth/password"
)

// fast parameters: the default 19 MiB is exercised once, in TestDefaults.
func fastConfig() password.Config {
	c := password.DefaultConfig()
	c.MemoryKiB = 64
	c.Iterations = 1
	return c
}

func newHasher(t *testing.T, c password.Config) *password.Hasher {
	t.Helper()
	h, err := password.NewHasher(c)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := password.DefaultConfig()
	if c.MemoryKiB != 19456 || c.Iterations != 2 || c.Parallelism != 1 {
		t.Fatalf("defaults are not OWASP's: %+v", c)
	}
	h := newHasher(t, c)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("not a PHC string with the defaults: %s", enc)
	}
	ok, err := h.Verify(ctx, "correct horse battery", enc)
	if err != nil || !ok {
		t.Fatalf("Verify = %v, %v", ok, err)
	}
	if h.NeedsRehash(enc) {
		t.Fatal("fresh hash needs rehash")
	}
}

func TestHashVerify(t *testing.T) {
	t.Parallel()
	h := newHasher(t, fastConfig())
	ctx := context.Background()
	a, err := h.Hash(ctx, "s3cret passphrase")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := h.Hash(ctx, "s3cret passphrase")
	if a == b {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{
		{"s3cret passphrase", true},
		{"s3cret passphrasE", false},
		{"", false},
		{strings.Repeat("x", password.MaxPasswordBytes+1), false},
	} {
		ok, err := h.Verify(ctx, tc.pw, a)
		if err != nil || ok != tc.want {
			t.Errorf("Verify(%.20q) = %v, %v; want %v", tc.pw, ok, err, tc.want)
		}
	}
	if err := h.DummyVerify(ctx, "anything"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Hash(ctx, strings.Repeat("x", password.MaxPasswordBytes+1)); !errors.Is(err, password.ErrTooLong) {
		t.Fatalf("Hash of an over-long password: %v", err)
	}
}

func TestUnicodeFormsAreOnePassword(t *testing.T) {
	t.Parallel()
	h := newHasher(t, fastConfig())
	ctx := context.Background()
	enc, _ := h.Hash(ctx, "caf\u00e9 au lait!")
	if ok, _ := h.Verify(ctx, "cafe\u0301 au lait!", enc); !ok {
		t.Fatal("the decomposed form of the same password does not verify")
	}
}

func TestVerifyUsesParametersOfTheHash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	old := newHasher(t, fastConfig())
	enc, _ := old.Hash(ctx, "an old password!")
	c := fastConfig()
	c.Iterations = 2
	cur := newHasher(t, c)
	if ok, err := cur.Verify(ctx, "an old password!", enc); err != nil || !ok {
		t.Fatalf("old hash no longer verifies: %v %v", ok, err)
	}
	if !cur.NeedsRehash(enc) {
		t.Fatal("NeedsRehash is false after the iterations changed")
	}
	if old.NeedsRehash(enc) {
		t.Fatal("NeedsRehash is true under the same parameters")
	}
}

func TestMalformedHashes(t *testing.T) {
	t.Parallel()
	h := newHasher(t, fastConfig())
	good, _ := h.Hash(context.Background(), "whatever it is")
	parts := strings.Split(good, "$")
	for _, bad := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=64,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=16$m=64,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=64,t=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$t=1,m=64,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=99999999,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=64,t=1,p=1$" + parts[4] + "==$" + parts[5],
		"$argon2id$v=19$m=64,t=1,p=1$" + parts[4],
		good + "$",
	} {
		if ok, err := h.Verify(context.Background(), "whatever it is", bad); ok || !errors.Is(err, password.ErrMalformedHash) {
			t.Errorf("Verify(%q) = %v, %v; want ErrMalformedHash", bad, ok, err)
		}
		if !h.NeedsRehash(bad) {
			t.Errorf("NeedsRehash(%q) = false", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := password.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	err := password.Config{}.Validate()
	if err == nil {
		t.Fatal("zero config is valid")
	}
	// every problem at once
	for _, want := range []string{"parallelism", "memory", "iterations", "salt", "key length"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	p := password.DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, pw, email string
		rule            password.Rule
	}{
		{"ok", "violet-harbour-tram", "alice@example.com", ""},
		{"ok unicode passphrase", "żółw-pływa-wolno", "alice@example.com", ""},
		{"too short", "short1!", "alice@example.com", password.RuleTooShort},
		{"nine code points, many bytes", "ééééééééé", "a@example.com", password.RuleTooShort},
		{"too long", strings.Repeat("ab1", 400), "a@example.com", password.RuleTooLong},
		{"the email", "Alice.Long@Example.com", "alice.long@example.com", password.RuleIsEmail},
		{"the local part", "Alice.Longname", "alice.longname@example.com", password.RuleIsLocalPart},
		{"common", "password123", "alice@example.com", password.RuleCommon},
		{"common, case-insensitive", "Qwerty12345", "alice@example.com", password.RuleCommon},
		{"common walk", "1qaz2wsx3edc", "alice@example.com", password.RuleCommon},
		{"common with year", "Football2024", "alice@example.com", password.RuleCommon},
		{"repeated char", "~~~~~~~~~~~~", "alice@example.com", password.RuleRepetitive},
		{"repeated unit", "xyzxyzxyzxyz", "alice@example.com", password.RuleRepetitive},
		{"sequence", "klmnopqrstu", "alice@example.com", password.RuleRepetitive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := p.Check(tc.pw, tc.email)
			if tc.rule == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			var pe *password.PolicyError
			if !errors.As(err, &pe) || pe.Rule != tc.rule || pe.Field != "password" || pe.Message == "" {
				t.Fatalf("Check = %v, want rule %s", err, tc.rule)
			}
			if !errors.Is(err, password.ErrPolicy) {
				t.Fatal("not errors.Is ErrPolicy")
			}
		})
	}
}

func TestCommonListIsSubstantial(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"password", "iloveyou", "1234567890", "letmein123", "P@ssw0rd123"} {
		if !password.IsCommon(pw) {
			t.Errorf("%q is not on the common list", pw)
		}
	}
	if password.IsCommon("violet-harbour-tram") {
		t.Error("a random passphrase is on the common list")
	}
}
