package token_test

import (
	"testing"
	"time"

	"github.com/authledger/authledger/auth/keys"
)

// BenchmarkIssue and BenchmarkVerify measure one ES256 access token (the
// default algorithm): every login and refresh issues one, every
// authenticated request verifies one.
func BenchmarkIssue(b *testing.B) {
	f := newFixture(b, keys.ES256)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.issuer.Issue(subject, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b, keys.ES256)
	s, _, err := f.issuer.Issue(subject, t0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.verifier.Verify(s, t0.Add(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
}
