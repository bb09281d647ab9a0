package password_test

import (
	"context"
	"testing"

	"github.com/authledger/authledger/auth/password"
)

// BenchmarkHashDefault measures raw argon2id hashes with the OWASP
// defaults, the baseline the login benchmark of issue 5 compares against.
func BenchmarkHashDefault(b *testing.B) {
	h, err := password.NewHasher(password.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerifyDefault measures a verification (what a login spends).
func BenchmarkVerifyDefault(b *testing.B) {
	h, err := password.NewHasher(password.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	enc, _ := h.Hash(ctx, "correct horse battery staple")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, err := h.Verify(ctx, "correct horse battery staple", enc); err != nil || !ok {
				b.Error("verify failed", err)
				return
			}
		}
	})
}
