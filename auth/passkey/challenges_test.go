package passkey

// An internal test: keep and take are the single-use rule every
// ceremony rests on; the ceremonies themselves are driven end to end in
// cmd/authledger/passkey_test.go with a software authenticator.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/test/pgtest"
)

func TestAChallengeIsTakenOnceForItsPurposeAndSubjectWithinItsLife(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	now := time.Now()
	rp, err := New(pool, Config{RPID: "id.example", Origins: []string{"https://id.example"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := rp.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	user := uuid.NewString()
	keep := func(challenge string) {
		t.Helper()
		if _, err := rp.keep(ctx, PurposeRegister, user, &webauthn.SessionData{Challenge: challenge, RelyingPartyID: "id.example"}, map[string]string{}); err != nil {
			t.Fatal(err)
		}
	}

	keep("Y2hhbGxlbmdlLW9uZQ")
	var stored string
	if err := pool.QueryRow(ctx, `SELECT session::text FROM `+ChallengesTable).Scan(&stored); err != nil || strings.Contains(stored, "Y2hhbGxlbmdlLW9uZQ") {
		t.Fatalf("the challenge is kept in clear: %s %v", stored, err)
	}
	s, err := rp.take(ctx, PurposeRegister, user, "Y2hhbGxlbmdlLW9uZQ")
	if err != nil || s.Challenge != "Y2hhbGxlbmdlLW9uZQ" || s.RelyingPartyID != "id.example" {
		t.Fatalf("take: %+v %v", s, err)
	}
	if _, err := rp.take(ctx, PurposeRegister, user, "Y2hhbGxlbmdlLW9uZQ"); !errors.Is(err, ErrChallenge) {
		t.Fatalf("taken twice: %v", err)
	}

	// A wrong purpose or subject spends it too: the first answer decides.
	keep("Y2hhbGxlbmdlLXR3bw")
	if _, err := rp.take(ctx, PurposePasswordless, "", "Y2hhbGxlbmdlLXR3bw"); !errors.Is(err, ErrChallenge) {
		t.Fatalf("another purpose: %v", err)
	}
	if _, err := rp.take(ctx, PurposeRegister, user, "Y2hhbGxlbmdlLXR3bw"); !errors.Is(err, ErrChallenge) {
		t.Fatalf("after a wrong answer: %v", err)
	}
	keep("Y2hhbGxlbmdlLXRocmVl")
	if _, err := rp.take(ctx, PurposeRegister, uuid.NewString(), "Y2hhbGxlbmdlLXRocmVl"); !errors.Is(err, ErrChallenge) {
		t.Fatalf("another user: %v", err)
	}

	// Past its life it is refused, and the next write purges it.
	keep("Y2hhbGxlbmdlLWZvdXI")
	now = now.Add(DefaultChallengeTTL + time.Second)
	if _, err := rp.take(ctx, PurposeRegister, user, "Y2hhbGxlbmdlLWZvdXI"); !errors.Is(err, ErrChallenge) {
		t.Fatalf("expired: %v", err)
	}
	keep("Y2hhbGxlbmdlLWZpdmU")
	now = now.Add(DefaultChallengeTTL + time.Second)
	keep("Y2hhbGxlbmdlLXNpeA")
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+ChallengesTable).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d rows after the purge (%v)", rows, err)
	}
	for _, bad := range []string{"", "not base64!"} {
		if _, err := rp.take(ctx, PurposeRegister, user, bad); !errors.Is(err, ErrChallenge) {
			t.Fatalf("challenge %q: %v", bad, err)
		}
	}
}
