package mailtoken_test

import (
	"bytes"
	"testing"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/mailtoken"
)

func TestMintIsDeterministicPerPurposeAndRoundTrips(t *testing.T) {
	t.Parallel()
	m, err := mailtoken.NewMinter(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	u, id := uuid.New(), uuid.New()
	a, b := m.Mint(mailtoken.EmailVerification, u, id), m.Mint(mailtoken.EmailVerification, u, id)
	if a.Encode() != b.Encode() {
		t.Fatal("the same arguments minted different tokens")
	}
	if r := m.Mint(mailtoken.PasswordReset, u, id); r.Digest() == a.Digest() {
		t.Fatal("a reset token equals a verification token")
	}
	other, _ := mailtoken.NewMinter(bytes.Repeat([]byte{8}, 32))
	if other.Mint(mailtoken.EmailVerification, u, id).Digest() == a.Digest() {
		t.Fatal("another key minted the same token")
	}
	p, err := mailtoken.Parse(a.Encode())
	if err != nil || p.UserID != u || p.TokenID != id || p.Digest() != a.Digest() {
		t.Fatalf("parse: %+v %v", p, err)
	}
	for _, bad := range []string{"", "short", a.Encode()[1:], a.Encode() + "A", "!" + a.Encode()[1:]} {
		if _, err := mailtoken.Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if _, err := mailtoken.NewMinter([]byte("short")); err == nil {
		t.Error("a short key was accepted")
	}
}
