package commands_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// eventsRead passes every call to the store and counts the events that
// stream reads return.
type eventsRead struct {
	eventstore.Store
	n atomic.Int64
}

func (s *eventsRead) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	recs, err := s.Store.ReadStream(ctx, stream, opts)
	s.n.Add(int64(len(recs)))
	return recs, err
}

// registerAndLogIn registers email and logs in once.
func (ih identityHandlers) registerAndLogIn(t *testing.T, email string) commands.LoginResult {
	t.Helper()
	ctx := context.Background()
	if _, err := ih.reg.Handle(ctx, commands.Register{Email: email, Password: "correct horse battery", DisplayName: email}); err != nil {
		t.Fatal(err)
	}
	r, err := ih.login.Handle(ctx, commands.Login{Email: email, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRefreshReadsOnlyTheLastEventOfItsSession(t *testing.T) {
	// ... and nothing of its user: the session carries the claims.
	t.Parallel()
	var reads *eventsRead
	ih := newIdentityHandlers(t, func(s eventstore.Store) eventstore.Store { reads = &eventsRead{Store: s}; return reads })
	ctx := context.Background()
	login := ih.registerAndLogIn(t, "dana@example.com")
	stream := session.StreamName(login.SessionID)
	chain := []string{login.RefreshToken}
	refresh := func() {
		t.Helper()
		r, err := ih.refresh.Handle(ctx, commands.Refresh{RefreshToken: chain[len(chain)-1]})
		if err != nil {
			t.Fatalf("refresh %d: %v", len(chain), err)
		}
		chain = append(chain, r.RefreshToken)
	}
	for range 10 {
		refresh()
	}
	reads.n.Store(0)
	refresh()
	if n := reads.n.Load(); n != 1 {
		t.Fatalf("the 11th refresh read %d events, want 1 (its session's last)", n)
	}
	version := func() int {
		t.Helper()
		s, err := ih.sessions.Load(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		return s.Version()
	}

	// A token never issued that names the session is refused with nothing
	// appended, although telling it from a rotated one takes the whole
	// stream; the current token keeps working.
	forged, err := token.NewRefreshToken(login.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	before := version()
	if _, err := ih.refresh.Handle(ctx, commands.Refresh{RefreshToken: forged.Encode()}); !errors.Is(err, commands.ErrInvalidToken) {
		t.Fatalf("forged token: %v", err)
	}
	if after := version(); after != before {
		t.Fatalf("a forged token appended %d events", after-before)
	}
	refresh()

	// A token rotated out long ago is reuse: the session is revoked.
	if _, err := ih.refresh.Handle(ctx, commands.Refresh{RefreshToken: chain[3]}); !errors.Is(err, commands.ErrInvalidToken) {
		t.Fatalf("reused token: %v", err)
	}
	s, err := ih.sessions.Load(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if reason, _, revoked := s.Revoked(); !revoked || reason != session.ReasonReuseDetected {
		t.Fatalf("after reuse: revoked %v (%s)", revoked, reason)
	}
	if _, err := ih.refresh.Handle(ctx, commands.Refresh{RefreshToken: chain[len(chain)-1]}); !errors.Is(err, commands.ErrInvalidToken) {
		t.Fatalf("current token after reuse: %v", err)
	}
}

func TestRefreshFoldsASessionWhoseLastRotationPredatesTerms(t *testing.T) {
	t.Parallel()
	ih := newIdentityHandlers(t, nil)
	ctx := context.Background()
	login := ih.registerAndLogIn(t, "erin@example.com")
	// A rotation as recorded before Refreshed carried the session's terms.
	first, err := token.ParseRefreshToken(login.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	next, err := token.NewRefreshToken(login.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	old := session.Refreshed{SessionID: login.SessionID, RefreshDigest: session.Digest(next.Digest()), PreviousDigest: session.Digest(first.Digest()),
		Generation: 1, RefreshedAt: now, IdleExpiresAt: now.Add(time.Hour)}
	stream := session.StreamName(login.SessionID)
	if _, err := ih.sessions.Append(ctx, stream, 1, commands.Meta{}, []events.Event{old}); err != nil {
		t.Fatal(err)
	}
	r, err := ih.refresh.Handle(ctx, commands.Refresh{RefreshToken: next.Encode()})
	if err != nil {
		t.Fatalf("refresh after an old rotation: %v", err)
	}
	if _, err := ih.refresh.Handle(ctx, commands.Refresh{RefreshToken: r.RefreshToken}); err != nil {
		t.Fatalf("refresh after a new rotation: %v", err)
	}
}

func TestRefreshReadsTheUserOfASessionStartedWithoutClaims(t *testing.T) {
	t.Parallel()
	ih := newIdentityHandlers(t, nil)
	ctx := context.Background()
	login := ih.registerAndLogIn(t, "fay@example.com")
	// A session as logins recorded it before sessions carried claims.
	rt, err := token.NewRefreshToken(uuid.New())
	if err != nil {
		t.Fatal(err)
	}
	s, err := session.Start(session.StartParams{SessionID: rt.SessionID(), UserID: login.User.ID, Method: session.MethodPassword,
		AMR: []string{session.AMRPassword}, RefreshDigest: session.Digest(rt.Digest())}, time.Now(), session.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ih.sessions.Append(ctx, session.StreamName(rt.SessionID()), 0, commands.Meta{}, s.Changes()); err != nil {
		t.Fatal(err)
	}
	r, err := ih.refresh.Handle(ctx, commands.Refresh{RefreshToken: rt.Encode()})
	if err != nil {
		t.Fatal(err)
	}
	if r.User != login.User || r.Claims.Name != "fay@example.com" || !slices.Equal(r.Claims.Roles, login.Claims.Roles) {
		t.Fatalf("refresh of a session without claims: %+v, %+v; login gave %+v", r.User, r.Claims, login.User)
	}
}

func TestSyncSessionClaims(t *testing.T) {
	t.Parallel()
	ih := newIdentityHandlers(t, nil)
	ctx := context.Background()
	gil := ih.registerAndLogIn(t, "gil@example.com")
	other := ih.registerAndLogIn(t, "hal@example.com")
	ended, err := ih.login.Handle(ctx, commands.Login{Email: "gil@example.com", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&commands.RevokeSessionHandler{Sessions: ih.sessions}).Handle(ctx,
		commands.RevokeSession{SessionID: ended.SessionID, UserID: gil.User.ID, Reason: session.ReasonLogout}); err != nil {
		t.Fatal(err)
	}
	sync := func() int {
		t.Helper()
		n, err := ih.sync.Handle(ctx, commands.SyncSessionClaims{UserID: gil.User.ID,
			Sessions: []uuid.UUID{gil.SessionID, ended.SessionID, other.SessionID, uuid.New()}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := sync(); n != 0 {
		t.Fatalf("sync of unchanged claims updated %d sessions", n)
	}
	if _, err := ih.users.Update(ctx, user.StreamName(gil.User.ID), commands.Meta{}, func(u *user.User) error {
		return errors.Join(u.GrantRole("auditor", time.Now()), u.ChangeDisplayName("Gil G.", time.Now()))
	}); err != nil {
		t.Fatal(err)
	}
	// Only gil's open session changes: not the revoked one, not hal's, not
	// a stream with no session.
	if n := sync(); n != 1 {
		t.Fatalf("sync after a change updated %d sessions, want 1", n)
	}
	if n := sync(); n != 0 {
		t.Fatalf("a second sync updated %d sessions", n)
	}
	r, err := ih.refresh.Handle(ctx, commands.Refresh{RefreshToken: gil.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	if r.Claims.Name != "Gil G." || !slices.Contains(r.Claims.Roles, "auditor") || r.User.DisplayName != "Gil G." {
		t.Fatalf("refresh after the sync: %+v, %+v", r.Claims, r.User)
	}
	h, err := ih.refresh.Handle(ctx, commands.Refresh{RefreshToken: other.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(h.Claims.Roles, "auditor") || h.Claims.Name != "hal@example.com" {
		t.Fatalf("another user's session changed: %+v", h.Claims)
	}
}
