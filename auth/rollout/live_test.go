package rollout_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/authledger/authledger/auth/rollout"
	"github.com/authledger/authledger/commands"
	domain "github.com/authledger/authledger/domain/rollout"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/migrations"
	"github.com/authledger/authledger/test/pgtest"
)

var key = bytes.Repeat([]byte{4}, 32)

// An instance that starts after changes were made folds them from the
// stream at Start; an event both Start and the follower deliver counts
// once; later changes arrive through Apply.
func TestLiveStartsFromTheStreamAndAppliesEachChangeOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	if err := migrations.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	store, err := pg.Open(ctx, pg.Config{ConnString: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	reg := events.NewRegistry()
	if err := domain.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	repo, err := commands.NewRepository(store, reg, domain.FromHistory)
	if err != nil {
		t.Fatal(err)
	}
	h := &commands.ConfigureRolloutHandler{Rollouts: repo}
	configure := func(c domain.Change) {
		t.Helper()
		if _, err := h.Handle(ctx, commands.ConfigureRollout{Change: c}); err != nil {
			t.Fatal(err)
		}
	}
	configure(domain.Change{Mode: domain.ModeStaged, Allow: []string{"a@example.com"}})
	configure(domain.Change{Disallow: []string{"a@example.com"}, Allow: []string{"b@example.com"}})

	live, err := rollout.NewLive(key, domain.ModeOn)
	if err != nil {
		t.Fatal(err)
	}
	if !live.External("anyone@example.com") {
		t.Fatal("before Start the deployment's mode (on) applies")
	}
	if _, err := live.Start(ctx, store); err != nil {
		t.Fatal(err)
	}
	if live.External("a@example.com") || !live.External("B@example.com") || live.Settings().Mode != domain.ModeStaged {
		t.Fatalf("after Start: %+v", live.Settings())
	}
	// The follower delivers the first change again (it was committed
	// after the head Start took, say): nothing changes.
	recs, err := store.ReadStream(ctx, domain.StreamName, eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Apply(ctx, recs[0]); err != nil {
		t.Fatal(err)
	}
	if live.External("a@example.com") {
		t.Error("a change applied twice undid a later one")
	}
	configure(domain.Change{Mode: domain.ModeOff})
	recs, err = store.ReadStream(ctx, domain.StreamName, eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Apply(ctx, recs[len(recs)-1]); err != nil {
		t.Fatal(err)
	}
	if live.External("b@example.com") || live.Settings().Mode != domain.ModeOff {
		t.Errorf("after mode off: %+v", live.Settings())
	}
}
