package commands_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/keys/pgstore"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/signingkey"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore/pg"
)

func TestKeyManager(t *testing.T) {
	t.Parallel()
	users, store := newRepo(t)
	_ = users
	ctx := context.Background()
	reg := events.NewRegistry()
	if err := signingkey.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	ringRepo, err := commands.NewRepository(store, reg, signingkey.FromHistory)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := pgstore.New(store.(*pg.Store).Pool())
	if err != nil {
		t.Fatal(err)
	}
	master, err := keys.NewMasterKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m := &commands.KeyManager{Ring: ringRepo, Store: ks, Master: master, Algorithm: keys.DefaultAlgorithm,
		Retain: 20 * time.Minute, Overlap: time.Hour, Now: func() time.Time { return now }}
	ring, err := m.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, err := ring.Signer(now)
	if err != nil {
		t.Fatal(err)
	}
	if ring, err = m.Bootstrap(ctx); err != nil || len(ring.Entries()) != 1 {
		t.Fatalf("second bootstrap: %v", err)
	}
	id, _, err := m.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if did, err := m.ActivateDue(ctx); err != nil || did {
		t.Fatalf("activated inside the overlap: %v %v", did, err)
	}
	now = now.Add(2 * time.Hour)
	if ring, err = m.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := ring.Signer(now)
	if err != nil || s.ID() != id || s.ID() == first.ID() {
		t.Fatalf("signer after overlap: %v %v", s, err)
	}
}
