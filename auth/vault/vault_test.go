package vault_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/vault"
	"github.com/authledger/authledger/migrations"
	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/testclock"
)

// database is a migrated database of the test's own.
func database(t *testing.T) string {
	t.Helper()
	url := pgtest.NewDatabase(t)
	if err := migrations.Migrate(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	return url
}

func pool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func masterKey(t *testing.T) *keys.MasterKey {
	t.Helper()
	b := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(b)
	k, err := keys.NewMasterKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newVault(t *testing.T, cfg vault.Config) *vault.Vault {
	t.Helper()
	v, err := vault.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tokens are provider-like tokens: long random strings, distinct per
// call, expiring at exp.
func tokens(exp time.Time) external.Tokens {
	r := func(prefix string) string {
		b := make([]byte, 48)
		_, _ = rand.Read(b)
		return prefix + base64.RawURLEncoding.EncodeToString(b)
	}
	return external.Tokens{AccessToken: r("eyJhY2Nlc3Mi."), IDToken: r("eyJpZCI."), RefreshToken: r("rt_"), ExpiresAt: exp}
}

func TestPutGetDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := testclock.New()
	v := newVault(t, vault.Config{Pool: pool(t, database(t)), MasterKey: masterKey(t), Now: clk.Now})
	sess, user := uuid.New(), uuid.New()
	tk := tokens(clk.Now().Add(time.Hour))

	if _, err := v.Get(ctx, sess); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("get before put: %v", err)
	}
	rec, err := v.Put(ctx, sess, user, tk)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tk.AccessToken))
	if rec.AccessFingerprint != "sha256:"+hex.EncodeToString(sum[:]) || rec.RefreshFingerprint != external.Fingerprint(tk.RefreshToken) ||
		rec.IDFingerprint != external.Fingerprint(tk.IDToken) || rec.Version != 1 || !rec.ExpiresAt.Equal(tk.ExpiresAt) ||
		rec.SessionID != sess || rec.UserID != user || !rec.RefreshedAt.IsZero() {
		t.Fatalf("record %+v", rec)
	}
	e, err := v.Get(ctx, sess)
	if err != nil {
		t.Fatal(err)
	}
	if e.Tokens.AccessToken != tk.AccessToken || e.Tokens.IDToken != tk.IDToken || e.Tokens.RefreshToken != tk.RefreshToken || !e.Tokens.ExpiresAt.Equal(tk.ExpiresAt) {
		t.Fatalf("tokens do not round-trip: %v", e.Tokens)
	}

	// A second Put replaces the tokens.
	tk2 := tokens(clk.Now().Add(2 * time.Hour))
	tk2.IDToken = ""
	if rec, err = v.Put(ctx, sess, user, tk2); err != nil || rec.Version != 2 || rec.IDFingerprint != "" {
		t.Fatalf("%+v %v", rec, err)
	}
	if e, err = v.Get(ctx, sess); err != nil || e.Tokens.AccessToken != tk2.AccessToken || e.Tokens.IDToken != "" {
		t.Fatalf("%v %v", e, err)
	}

	other := uuid.New()
	if _, err := v.Put(ctx, other, user, tokens(clk.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if ok, err := v.Delete(ctx, sess); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if ok, err := v.Delete(ctx, sess); ok || err != nil {
		t.Fatalf("delete again: %v %v", ok, err)
	}
	if _, err := v.Get(ctx, sess); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if n, err := v.DeleteUser(ctx, user); n != 1 || err != nil {
		t.Fatalf("delete user: %d %v", n, err)
	}
	if _, err := v.Put(ctx, uuid.New(), user, external.Tokens{AccessToken: "x"}); err == nil {
		t.Fatal("Put without an expiry was accepted")
	}
}

// The table holds no token in any form a reader of the database, a dump or
// a backup could use: not the raw bytes, nor their hex or base64.
func TestTheTableNeverHoldsARawToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := database(t)
	p := pool(t, url)
	clk := testclock.New()
	v := newVault(t, vault.Config{Pool: p, MasterKey: masterKey(t), Now: clk.Now})
	var secrets []string // every token ever stored
	live := map[uuid.UUID]external.Tokens{}
	for range 5 {
		tk := tokens(clk.Now().Add(time.Minute))
		secrets = append(secrets, tk.AccessToken, tk.IDToken, tk.RefreshToken)
		s := uuid.New()
		live[s] = tk
		if _, err := v.Put(ctx, s, uuid.New(), tk); err != nil {
			t.Fatal(err)
		}
	}
	// Renewed tokens too.
	claims, err := v.Due(ctx, time.Hour, 10)
	if err != nil || len(claims) != 5 {
		t.Fatalf("due: %d %v", len(claims), err)
	}
	for _, c := range claims[:2] {
		tk := tokens(clk.Now().Add(time.Hour))
		secrets = append(secrets, tk.AccessToken, tk.IDToken, tk.RefreshToken)
		live[c.SessionID] = tk
		if _, err := v.Renew(ctx, c, tk); err != nil {
			t.Fatal(err)
		}
	}

	// Every byte of every row: each row as text (bytea as hex), and the
	// raw bytea columns.
	var dump bytes.Buffer
	rows, err := p.Query(ctx, `SELECT t::text, nonce, ciphertext FROM external_tokens t`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var text string
		var nonce, ct []byte
		if err := rows.Scan(&text, &nonce, &ct); err != nil {
			t.Fatal(err)
		}
		dump.WriteString(text)
		dump.Write(nonce)
		dump.Write(ct)
		n++
	}
	if err := rows.Err(); err != nil || n != 5 {
		t.Fatalf("%d rows, %v", n, err)
	}
	for _, s := range secrets {
		for _, form := range []string{s, hex.EncodeToString([]byte(s)), base64.StdEncoding.EncodeToString([]byte(s)), s[len(s)-24:]} {
			if bytes.Contains(dump.Bytes(), []byte(form)) {
				t.Fatalf("the table holds a token (%.12s...)", form)
			}
		}
	}
	// What is there instead: the fingerprints of the live tokens.
	for _, tk := range live {
		for _, s := range []string{tk.AccessToken, tk.IDToken, tk.RefreshToken} {
			if !strings.Contains(dump.String(), external.Fingerprint(s)) {
				t.Fatalf("no fingerprint of a live token in the table")
			}
		}
	}
}

func TestRowsOpenOnlyUnderTheirKeyAndSessionAndKeysRotate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := pool(t, database(t))
	clk := testclock.New()
	k1, k2 := masterKey(t), masterKey(t)
	v1 := newVault(t, vault.Config{Pool: p, MasterKey: k1, Now: clk.Now})
	a, b, user := uuid.New(), uuid.New(), uuid.New()
	ta, tb := tokens(clk.Now().Add(time.Minute)), tokens(clk.Now().Add(time.Minute))
	if _, err := v1.Put(ctx, a, user, ta); err != nil {
		t.Fatal(err)
	}
	if _, err := v1.Put(ctx, b, user, tb); err != nil {
		t.Fatal(err)
	}

	// Another master key alone cannot open the rows.
	only2 := newVault(t, vault.Config{Pool: p, MasterKey: k2, Now: clk.Now})
	if _, err := only2.Get(ctx, a); !errors.Is(err, vault.ErrUnknownKey) {
		t.Fatalf("err = %v", err)
	}
	// Rotation: k2 current, k1 old. Old rows open; a renewed row is
	// resealed under k2 and then opens without k1.
	rotated := newVault(t, vault.Config{Pool: p, MasterKey: k2, OldMasterKeys: []*keys.MasterKey{k1}, Now: clk.Now})
	if e, err := rotated.Get(ctx, a); err != nil || e.Tokens.AccessToken != ta.AccessToken || e.KeyID != k1.ID() {
		t.Fatalf("%v %v", e, err)
	}
	claims, err := rotated.Due(ctx, time.Hour, 1)
	if err != nil || len(claims) != 1 {
		t.Fatalf("%d %v", len(claims), err)
	}
	renewed := tokens(clk.Now().Add(time.Hour))
	rec, err := rotated.Renew(ctx, claims[0], renewed)
	if err != nil || rec.KeyID != k2.ID() || rec.Version != 2 {
		t.Fatalf("%+v %v", rec, err)
	}
	if e, err := only2.Get(ctx, claims[0].SessionID); err != nil || e.Tokens.AccessToken != renewed.AccessToken {
		t.Fatalf("%v %v", e, err)
	}

	// A ciphertext moved to another session does not open.
	if _, err := p.Exec(ctx, `UPDATE external_tokens SET nonce = s.nonce, ciphertext = s.ciphertext, key_id = s.key_id
		FROM external_tokens s WHERE external_tokens.session_id = $1 AND s.session_id = $2`, a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.Get(ctx, a); !errors.Is(err, vault.ErrCorrupt) {
		t.Fatalf("err = %v", err)
	}
}

func TestDueClaimsEachDueRowForOneInstanceAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := database(t)
	clk := testclock.New()
	mk := masterKey(t)
	// Two instances: their own pools, one database.
	v1 := newVault(t, vault.Config{Pool: pool(t, url), MasterKey: mk, Now: clk.Now, Lease: time.Minute})
	v2 := newVault(t, vault.Config{Pool: pool(t, url), MasterKey: mk, Now: clk.Now, Lease: time.Minute})

	due := map[uuid.UUID]bool{}
	for i := range 60 {
		s := uuid.New()
		exp := clk.Now().Add(time.Duration(i%3) * 10 * time.Minute) // now, +10m, +20m
		if _, err := v1.Put(ctx, s, uuid.New(), tokens(exp)); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			due[s] = true
		}
	}

	// Both claim concurrently, in batches, until nothing is due within 5
	// minutes: every due row exactly once, none of the others.
	var mu sync.Mutex
	seen := map[uuid.UUID]int{}
	var wg sync.WaitGroup
	for _, v := range []*vault.Vault{v1, v2} {
		wg.Go(func() {
			for {
				cs, err := v.Due(ctx, 5*time.Minute, 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(cs) == 0 {
					return
				}
				mu.Lock()
				for _, c := range cs {
					seen[c.SessionID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != len(due) {
		t.Fatalf("claimed %d rows, %d are due", len(seen), len(due))
	}
	for s, n := range seen {
		if n != 1 || !due[s] {
			t.Fatalf("row %s claimed %d times (due %v)", s, n, due[s])
		}
	}

	// While the lease lasts nobody claims them again; after it, they are
	// claimable, and the first claim is lost.
	if cs, err := v2.Due(ctx, 5*time.Minute, 100); err != nil || len(cs) != 0 {
		t.Fatalf("%d %v", len(cs), err)
	}
	clk.Add(time.Minute)
	first, err := v1.Due(ctx, 5*time.Minute, 1)
	if err != nil || len(first) != 1 {
		t.Fatalf("%d %v", len(first), err)
	}
	clk.Add(time.Minute)
	second, err := v2.Due(ctx, 5*time.Minute, 100)
	if err != nil || len(second) != len(due) {
		t.Fatalf("%d %v", len(second), err)
	}
	if _, err := v1.Renew(ctx, first[0], tokens(clk.Now().Add(time.Hour))); !errors.Is(err, vault.ErrClaimLost) {
		t.Fatalf("renew on an expired, retaken claim: %v", err)
	}
	if _, err := v2.Renew(ctx, second[0], tokens(clk.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
}

func TestWritesAfterTheClaimWasTakenAwayAreRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := testclock.New()
	v := newVault(t, vault.Config{Pool: pool(t, database(t)), MasterKey: masterKey(t), Now: clk.Now})
	user := uuid.New()

	// Logout during a refresh: the tokens stay deleted.
	s := uuid.New()
	if _, err := v.Put(ctx, s, user, tokens(clk.Now())); err != nil {
		t.Fatal(err)
	}
	cs, err := v.Due(ctx, time.Minute, 10)
	if err != nil || len(cs) != 1 {
		t.Fatalf("%d %v", len(cs), err)
	}
	if _, err := v.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Renew(ctx, cs[0], tokens(clk.Now().Add(time.Hour))); !errors.Is(err, vault.ErrClaimLost) {
		t.Fatalf("renew after delete: %v", err)
	}
	if _, err := v.Get(ctx, s); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("a deleted session got tokens back: %v", err)
	}

	// A new login's Put during a refresh: the Put wins.
	if _, err := v.Put(ctx, s, user, tokens(clk.Now())); err != nil {
		t.Fatal(err)
	}
	cs, err = v.Due(ctx, time.Minute, 10)
	if err != nil || len(cs) != 1 {
		t.Fatalf("%d %v", len(cs), err)
	}
	fresh := tokens(clk.Now().Add(time.Hour))
	if _, err := v.Put(ctx, s, user, fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Renew(ctx, cs[0], tokens(clk.Now().Add(time.Hour))); !errors.Is(err, vault.ErrClaimLost) {
		t.Fatalf("renew after put: %v", err)
	}
	if _, err := v.Fail(ctx, cs[0], errors.New("x"), clk.Now()); !errors.Is(err, vault.ErrClaimLost) {
		t.Fatalf("fail after put: %v", err)
	}
	if e, err := v.Get(ctx, s); err != nil || e.Tokens.AccessToken != fresh.AccessToken {
		t.Fatalf("%v %v", e, err)
	}
}

func TestFailDefersTheRowAndCountsFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := testclock.New()
	v := newVault(t, vault.Config{Pool: pool(t, database(t)), MasterKey: masterKey(t), Now: clk.Now})
	s := uuid.New()
	if _, err := v.Put(ctx, s, uuid.New(), tokens(clk.Now())); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		cs, err := v.Due(ctx, time.Minute, 10)
		if err != nil || len(cs) != 1 || cs[0].Failures != i-1 {
			t.Fatalf("pass %d: %d %v %+v", i, len(cs), err, cs)
		}
		n, err := v.Fail(ctx, cs[0], fmt.Errorf("provider down %d", i), clk.Now().Add(time.Minute))
		if err != nil || n != i {
			t.Fatalf("fail: %d %v", n, err)
		}
		if cs, err := v.Due(ctx, time.Minute, 10); err != nil || len(cs) != 0 {
			t.Fatalf("due before its retry time: %d %v", len(cs), err)
		}
		clk.Add(time.Minute)
	}
	e, err := v.Get(ctx, s)
	if err != nil || e.Failures != 3 || e.LastError != "provider down 3" {
		t.Fatalf("%+v %v", e, err)
	}
}
