package commands_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// gatedStore is the real store, with appends to user streams held until
// the gate opens, and reads of user streams counted.
type gatedStore struct {
	eventstore.Store
	gate    chan struct{}
	started chan struct{}

	mu    sync.Mutex
	reads int
}

func (g *gatedStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, evs ...eventstore.EventData) (eventstore.AppendResult, error) {
	if strings.HasPrefix(stream, user.StreamPrefix) {
		select {
		case g.started <- struct{}{}:
		default:
		}
		<-g.gate
	}
	return g.Store.Append(ctx, stream, expected, evs...)
}

func (g *gatedStore) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	if strings.HasPrefix(stream, user.StreamPrefix) {
		g.mu.Lock()
		g.reads++
		g.mu.Unlock()
	}
	return g.Store.ReadStream(ctx, stream, opts)
}

func (g *gatedStore) userReads() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.reads
}

// Issue 18 item 11: a wrong password for a known account is answered
// before its failure is appended (which only known accounts make), and an
// unknown address reads a user stream as a known one does; the failures
// not yet appended still throttle the next attempts.
func TestAWrongPasswordDoesNotWaitForItsFailure(t *testing.T) {
	t.Parallel()
	g := &gatedStore{gate: make(chan struct{}), started: make(chan struct{}, 1)}
	ih := newIdentityHandlers(t, func(s eventstore.Store) eventstore.Store { g.Store = s; return g })
	ctx := context.Background()
	reg, err := ih.reg.Handle(ctx, commands.Register{Email: "kim@example.com", Password: "kim's right password", DisplayName: "Kim"})
	if err != nil {
		t.Fatal(err)
	}
	meta := commands.Meta{ClientIP: "198.51.100.4"}

	reads := g.userReads()
	if _, err := ih.login.Handle(ctx, commands.Login{Email: "nobody@example.com", Password: "wrong", Meta: meta}); !errors.Is(err, commands.ErrInvalidCredentials) {
		t.Fatal(err)
	}
	unknownReads := g.userReads() - reads
	reads = g.userReads()
	// The append is held at the gate, and the answer comes anyway.
	if _, err := ih.login.Handle(ctx, commands.Login{Email: "kim@example.com", Password: "wrong", Meta: meta}); !errors.Is(err, commands.ErrInvalidCredentials) {
		t.Fatal(err)
	}
	select {
	case <-g.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the failure's append never started")
	}
	// The failure's writer, off the response path, loads the user stream
	// before its (held) append: one read more than the answer made, and
	// done by now, since its append has started.
	if known := g.userReads() - reads - 1; known != unknownReads || known != 1 {
		t.Errorf("user stream reads on the response path: %d for a known address, %d for an unknown one", known, unknownReads)
	}
	max := user.DefaultThrottlePolicy().MaxFailures
	for i := 1; i < max; i++ {
		if _, err := ih.login.Handle(ctx, commands.Login{Email: "kim@example.com", Password: "wrong", Meta: meta}); !errors.Is(err, commands.ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	// None is appended yet, and the next attempt is held all the same.
	if n := countFailures(t, ih, reg.UserID.String()); n != 0 {
		t.Fatalf("%d failures appended through a closed gate", n)
	}
	if _, err := ih.login.Handle(ctx, commands.Login{Email: "kim@example.com", Password: "kim's right password", Meta: meta}); !errors.Is(err, user.ErrThrottled) {
		t.Fatalf("past the threshold with the failures still pending: %v", err)
	}
	close(g.gate)
	deadline := time.Now().Add(10 * time.Second)
	for countFailures(t, ih, reg.UserID.String()) < max {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d failures appended", countFailures(t, ih, reg.UserID.String()), max)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countFailures(t *testing.T, ih identityHandlers, id string) int {
	t.Helper()
	recs, err := ih.reg.Users.Store().ReadStream(context.Background(), user.StreamPrefix+id, eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if r.Type == user.EventLoginFailed {
			n++
		}
	}
	return n
}
