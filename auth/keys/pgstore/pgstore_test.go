package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/keys/pgstore"
	"github.com/authledger/authledger/migrations"
	"github.com/authledger/authledger/test/pgtest"
)

func TestStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	if err := migrations.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, err := pgstore.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	k := keys.SealedKey{ID: "k1", Algorithm: "ES256", MasterKeyID: "m1", Nonce: make([]byte, 12), Ciphertext: []byte("sealed"), CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := s.SaveSealed(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSealed(ctx, k); !errors.Is(err, keys.ErrKeyExists) {
		t.Fatalf("duplicate: %v", err)
	}
	got, err := s.LoadSealed(ctx)
	if err != nil || len(got) != 1 || got[0].ID != "k1" || string(got[0].Ciphertext) != "sealed" || !got[0].CreatedAt.Equal(k.CreatedAt) {
		t.Fatalf("load: %+v %v", got, err)
	}
}
