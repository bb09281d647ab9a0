package keys_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/authledger/authledger/auth/keys"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func masterKey(t *testing.T) *keys.MasterKey {
	t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	m, err := keys.NewMasterKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func generate(t *testing.T, alg jwa.SignatureAlgorithm) *keys.SigningKey {
	t.Helper()
	k, err := keys.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGenerateSealOpen(t *testing.T) {
	t.Parallel()
	for _, alg := range []jwa.SignatureAlgorithm{keys.ES256, keys.RS256, keys.EdDSA} {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			m := masterKey(t)
			k := generate(t, alg)
			if k.Algorithm() != alg || len(k.ID()) != 43 {
				t.Fatalf("key %v", k)
			}
			pub, _ := k.PublicJSON()
			for _, private := range []string{`"d"`, `"p"`, `"q"`} {
				if strings.Contains(string(pub), private) {
					t.Fatalf("public JSON carries %s: %s", private, pub)
				}
			}
			s1, err := m.Seal(k, t0)
			if err != nil {
				t.Fatal(err)
			}
			s2, _ := m.Seal(k, t0)
			if string(s1.Nonce) == string(s2.Nonce) || string(s1.Ciphertext) == string(s2.Ciphertext) {
				t.Fatal("two seals share a nonce")
			}
			if strings.Contains(string(s1.Ciphertext), `"d"`) {
				t.Fatal("ciphertext holds plain JSON")
			}
			back, err := m.Open(s1)
			if err != nil {
				t.Fatal(err)
			}
			if back.ID() != k.ID() || back.Algorithm() != alg {
				t.Fatalf("opened %v, sealed %v", back, k)
			}
		})
	}
}

func TestOpenRefusesTampering(t *testing.T) {
	t.Parallel()
	m := masterKey(t)
	k := generate(t, keys.ES256)
	other := generate(t, keys.ES256)
	s, _ := m.Seal(k, t0)
	so, _ := m.Seal(other, t0)
	for name, tc := range map[string]struct {
		mod  func(keys.SealedKey) keys.SealedKey
		want error
	}{
		"flipped bit": {func(s keys.SealedKey) keys.SealedKey {
			c := []byte(string(s.Ciphertext))
			c[3] ^= 1
			s.Ciphertext = c
			return s
		}, keys.ErrCorrupt},
		"other id":           {func(s keys.SealedKey) keys.SealedKey { s.ID = other.ID(); return s }, keys.ErrCorrupt},
		"other algorithm":    {func(s keys.SealedKey) keys.SealedKey { s.Algorithm = "RS256"; return s }, keys.ErrCorrupt},
		"swapped ciphertext": {func(s keys.SealedKey) keys.SealedKey { s.Ciphertext, s.Nonce = so.Ciphertext, so.Nonce; return s }, keys.ErrCorrupt},
		"short nonce":        {func(s keys.SealedKey) keys.SealedKey { s.Nonce = s.Nonce[:4]; return s }, keys.ErrCorrupt},
	} {
		if _, err := m.Open(tc.mod(s)); !errors.Is(err, tc.want) {
			t.Errorf("%s: Open = %v, want %v", name, err, tc.want)
		}
	}
	if _, err := masterKey(t).Open(s); !errors.Is(err, keys.ErrWrongMasterKey) {
		t.Errorf("wrong master key: %v", err)
	}
}

func TestMasterKeyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "master.key")
	k1, created, err := keys.CreateDevMasterKeyFile(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	k2, created, err := keys.CreateDevMasterKeyFile(path)
	if err != nil || created || k2.ID() != k1.ID() {
		t.Fatalf("second call: %v %v %v", k2, created, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.LoadMasterKeyFile(path); err == nil {
		t.Fatal("world-readable key file accepted")
	}
	raw := make([]byte, 32)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
		if _, err := keys.ParseMasterKey(" " + enc.EncodeToString(raw) + "\n"); err != nil {
			t.Errorf("ParseMasterKey: %v", err)
		}
	}
	for _, bad := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(raw[:16])} {
		if _, err := keys.ParseMasterKey(bad); err == nil {
			t.Errorf("ParseMasterKey(%q) accepted", bad)
		}
	}
	if strings.Contains(k1.String(), base64.StdEncoding.EncodeToString(raw)) {
		t.Fatal("String leaks")
	}
}

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var st keys.MemoryStore
	m := masterKey(t)
	s, _ := m.Seal(generate(t, keys.EdDSA), t0)
	if err := st.SaveSealed(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveSealed(ctx, s); !errors.Is(err, keys.ErrKeyExists) {
		t.Fatalf("duplicate save: %v", err)
	}
	all, _ := st.LoadSealed(ctx)
	if len(all) != 1 || all[0].ID != s.ID {
		t.Fatalf("loaded %v", all)
	}
}

func kids(t *testing.T, r *keys.KeyRing, now time.Time) []string {
	t.Helper()
	b, err := r.JWKSJSON(now)
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		out = append(out, keyID(k))
	}
	if strings.Contains(string(b), `"d":`) {
		t.Fatalf("private material in JWKS %s", b)
	}
	return out
}

func keyID(k jwk.Key) string {
	kid, _ := k.KeyID()
	return kid
}

func TestKeyRingLifecycle(t *testing.T) {
	t.Parallel()
	old, cur, next := generate(t, keys.ES256), generate(t, keys.EdDSA), generate(t, keys.ES256)
	h := time.Hour
	ring, err := keys.NewKeyRing(
		keys.Entry{Key: next, Lifecycle: keys.Lifecycle{AddedAt: t0.Add(2 * h)}},
		keys.Entry{Key: old, Lifecycle: keys.Lifecycle{AddedAt: t0.Add(-48 * h), ActivatedAt: t0.Add(-48 * h), RetiredAt: t0, RetainUntil: t0.Add(15*time.Minute + 30*time.Second)}},
		keys.Entry{Key: cur, Lifecycle: keys.Lifecycle{AddedAt: t0.Add(-h), ActivatedAt: t0}},
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at     time.Time
		signer *keys.SigningKey
		jwks   []string
	}{
		{t0.Add(-time.Minute), old, []string{old.ID(), cur.ID()}},
		{t0, cur, []string{old.ID(), cur.ID()}},
		{t0.Add(15 * time.Minute), cur, []string{old.ID(), cur.ID()}},
		{t0.Add(16 * time.Minute), cur, []string{cur.ID()}},
		{t0.Add(3 * h), cur, []string{cur.ID(), next.ID()}},
	} {
		s, err := ring.Signer(tc.at)
		if err != nil || s.ID() != tc.signer.ID() {
			t.Errorf("at %v: signer %v, %v; want %v", tc.at, s, err, tc.signer)
		}
		if got := kids(t, ring, tc.at); strings.Join(got, ",") != strings.Join(tc.jwks, ",") {
			t.Errorf("at %v: JWKS %v, want %v", tc.at, got, tc.jwks)
		}
	}
	if k, ok := ring.LookupKeyID(old.ID()); !ok || keyID(k) != old.ID() {
		t.Fatal("retired key not found for verification")
	}
	if _, ok := ring.LookupKeyID("nope"); ok {
		t.Fatal("unknown kid found")
	}
	empty, _ := keys.NewKeyRing()
	if _, err := empty.Signer(t0); !errors.Is(err, keys.ErrNoActiveKey) {
		t.Fatalf("empty ring: %v", err)
	}
	if _, err := keys.NewKeyRing(keys.Entry{Key: old, Lifecycle: keys.Lifecycle{AddedAt: t0}}, keys.Entry{Key: old, Lifecycle: keys.Lifecycle{AddedAt: t0}}); err == nil {
		t.Fatal("duplicate key accepted")
	}
	holder := keys.NewRingHolder(ring)
	if s, _ := holder.Signer(t0); s.ID() != cur.ID() {
		t.Fatal("holder does not delegate")
	}
	var jw map[string]any
	b, _ := ring.JWKSJSON(t0)
	if err := json.Unmarshal(b, &jw); err != nil || jw["keys"] == nil {
		t.Fatalf("JWKS is not {\"keys\": [...]}: %s", b)
	}
}

func TestParseAlgorithm(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"ES256", "RS256", "EdDSA"} {
		if _, err := keys.ParseAlgorithm(s); err != nil {
			t.Error(err)
		}
	}
	for _, s := range []string{"none", "HS256", "es256", "PS256", ""} {
		if _, err := keys.ParseAlgorithm(s); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestLoadRing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := masterKey(t)
	var st keys.MemoryStore
	a, b := generate(t, keys.ES256), generate(t, keys.EdDSA)
	for _, k := range []*keys.SigningKey{a, b} {
		s, _ := m.Seal(k, t0)
		if err := st.SaveSealed(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	ring, err := keys.LoadRing(ctx, &st, m, map[string]keys.Lifecycle{a.ID(): {AddedAt: t0, ActivatedAt: t0}})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := ring.Signer(t0); err != nil || s.ID() != a.ID() {
		t.Fatalf("signer %v %v", s, err)
	}
	if _, ok := ring.LookupKeyID(b.ID()); ok {
		t.Fatal("a key the log does not name is in the ring")
	}
	if _, err := keys.LoadRing(ctx, &st, m, map[string]keys.Lifecycle{"missing": {AddedAt: t0}}); err == nil {
		t.Fatal("a key missing from the store was not reported")
	}
	if _, err := keys.LoadRing(ctx, &st, masterKey(t), map[string]keys.Lifecycle{a.ID(): {AddedAt: t0}}); !errors.Is(err, keys.ErrWrongMasterKey) {
		t.Fatalf("wrong master key: %v", err)
	}
}

func TestDeriveKeyIsStablePerPurposeAndDistinct(t *testing.T) {
	m1, err := keys.NewMasterKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := keys.NewMasterKey(bytes.Repeat([]byte{7}, 32))
	other, _ := keys.NewMasterKey(bytes.Repeat([]byte{8}, 32))
	a1, _ := m1.DeriveKey("email reservation v1")
	a2, _ := m2.DeriveKey("email reservation v1")
	b1, _ := m1.DeriveKey("something else v1")
	c1, _ := other.DeriveKey("email reservation v1")
	if len(a1) != 32 || !bytes.Equal(a1, a2) {
		t.Fatalf("same master key and purpose gave different keys")
	}
	if bytes.Equal(a1, b1) || bytes.Equal(a1, c1) {
		t.Fatalf("different purposes or master keys gave the same key")
	}
	if _, err := m1.DeriveKey(""); err == nil {
		t.Fatalf("an empty purpose was accepted")
	}
}
