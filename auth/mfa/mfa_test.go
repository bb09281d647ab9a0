package mfa_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/mfa"
	"github.com/authledger/authledger/test/pgtest"
)

func TestMatchTOTPReturnsTheStepWithinOneStepEitherSide(t *testing.T) {
	t.Parallel()
	en, err := mfa.NewTOTP("authledger", "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(en.URI, "otpauth://totp/authledger:ada@example.com?") || en.QRPNG == "" || len(en.Secret) != 32 {
		t.Fatalf("enrolment: %+v", en)
	}
	now := time.Unix(1_800_000_015, 0)
	for d := -3; d <= 3; d++ {
		at := now.Add(time.Duration(d) * mfa.TOTPPeriod)
		code, err := mfa.TOTPCode(en.Secret, at)
		if err != nil {
			t.Fatal(err)
		}
		step, err := mfa.MatchTOTP(en.Secret, code, now)
		if err != nil {
			t.Fatal(err)
		}
		want := int64(0)
		if d >= -1 && d <= 1 {
			want = mfa.Step(at)
		}
		if step != want {
			t.Errorf("code %d steps away: step %d, want %d", d, step, want)
		}
	}
	if step, _ := mfa.MatchTOTP(en.Secret, "12345", now); step != 0 {
		t.Error("a five-digit code matched")
	}
}

func TestBackupCodesAreRandomAndTheirDigestIgnoresFormatting(t *testing.T) {
	t.Parallel()
	codes, digests, err := mfa.NewBackupCodes(10)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if len(c) != 19 || seen[c] || digests[i] != mfa.BackupCodeDigest(c) {
			t.Fatalf("code %q", c)
		}
		seen[c] = true
		if mfa.BackupCodeDigest(" "+strings.ToUpper(strings.ReplaceAll(c, "-", ""))) != digests[i] {
			t.Fatalf("formatting changes the digest of %q", c)
		}
	}
}

func TestChallengeTokensRoundTripAndRefuseGarbage(t *testing.T) {
	t.Parallel()
	u, c := uuid.New(), uuid.New()
	tok, err := mfa.NewChallengeToken(u, c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := mfa.ParseChallengeToken(tok.Encode())
	if err != nil || back.UserID != u || back.ChallengeID != c || back.Digest() != tok.Digest() {
		t.Fatalf("round trip: %v %+v", err, back)
	}
	for _, bad := range []string{"", "mfa_", tok.Encode()[4:], "xyz_" + tok.Encode()[4:], tok.Encode() + "A"} {
		if _, err := mfa.ParseChallengeToken(bad); !errors.Is(err, mfa.ErrMalformedToken) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func masterKey(t *testing.T, b byte) *keys.MasterKey {
	t.Helper()
	k, err := keys.NewMasterKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The table holds ciphertext only; a row opens only for its own method
// and user, and under the key that sealed it (or a configured old one).
func TestSecretsAreSealedAndBoundToTheirRow(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := context.Background()
	s, err := mfa.NewSecrets(pool, masterKey(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Setup(ctx); err != nil {
		t.Fatalf("setup twice: %v", err)
	}
	method, user := uuid.New(), uuid.New()
	const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	if err := s.Put(ctx, method, user, secret); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, method, user, secret); err == nil {
		t.Fatal("a method's secret was written twice")
	}
	got, err := s.Get(ctx, method, user)
	if err != nil || got != secret {
		t.Fatalf("get: %q %v", got, err)
	}
	var ct []byte
	if err := pool.QueryRow(ctx, `SELECT ciphertext FROM mfa_secrets`).Scan(&ct); err != nil || bytes.Contains(ct, []byte(secret)) {
		t.Fatalf("ciphertext: %v", err)
	}
	if _, err := s.Get(ctx, method, uuid.New()); !errors.Is(err, mfa.ErrSecretNotFound) {
		t.Fatalf("another user's: %v", err)
	}
	// Moved to another method: the additional data no longer matches.
	other := uuid.New()
	if _, err := pool.Exec(ctx, `UPDATE mfa_secrets SET method_id = $1`, other); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, other, user); !errors.Is(err, mfa.ErrSecretCorrupt) {
		t.Fatalf("moved row: %v", err)
	}
	if _, err := pool.Exec(ctx, `UPDATE mfa_secrets SET method_id = $1`, method); err != nil {
		t.Fatal(err)
	}
	// Rotation: a new key opens nothing alone, and everything with the old
	// one configured.
	if _, err := mustSecrets(t, pool, masterKey(t, 2)).Get(ctx, method, user); !errors.Is(err, mfa.ErrSecretCorrupt) {
		t.Fatalf("under another key: %v", err)
	}
	if got, err := mustSecrets(t, pool, masterKey(t, 2), masterKey(t, 1)).Get(ctx, method, user); err != nil || got != secret {
		t.Fatalf("with the old key configured: %q %v", got, err)
	}
	if err := s.Delete(ctx, method); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, method, user); !errors.Is(err, mfa.ErrSecretNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func mustSecrets(t *testing.T, pool *pgxpool.Pool, k *keys.MasterKey, old ...*keys.MasterKey) *mfa.Secrets {
	t.Helper()
	s, err := mfa.NewSecrets(pool, k, old...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
