package sessionclaims_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/reactors/sessionclaims"
	"github.com/authledger/authledger/test/identitytest"
)

type rig struct {
	env *projtest.Env
	st  *identitytest.Stack
}

func newRig(t *testing.T) *rig {
	t.Helper()
	env := projtest.New(t)
	return &rig{env: env, st: identitytest.New(t, context.Background(), env.Store, env.Store.Pool())}
}

// run starts a runner of the policy alone until stop or the test's end.
func (r *rig) run(t *testing.T) (stop func()) {
	t.Helper()
	return r.env.Run(t, sessionclaims.New(r.st.SyncClaims, r.st.Revoke, nil))
}

func (r *rig) register(t *testing.T, email string) {
	t.Helper()
	if _, err := r.st.Register.Handle(context.Background(), commands.Register{Email: email, Password: "correct horse battery", DisplayName: email}); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) login(t *testing.T, email string) commands.LoginResult {
	t.Helper()
	res, err := r.st.Login.Handle(context.Background(), commands.Login{Email: email, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// change grants role to the user and renames them; it returns the
// position of the append.
func (r *rig) change(t *testing.T, userID uuid.UUID, role, name string) eventstore.Position {
	t.Helper()
	res, err := r.st.Users.Update(context.Background(), user.StreamName(userID), commands.Meta{}, func(u *user.User) error {
		return errors.Join(u.GrantRole(role, time.Now()), u.ChangeDisplayName(name, time.Now()))
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.Position
}

// claimsUpdates are the ClaimsUpdated events of a session stream.
func (r *rig) claimsUpdates(t *testing.T, sid uuid.UUID) []eventstore.RecordedEvent {
	t.Helper()
	recs, err := r.env.Store.ReadStream(context.Background(), session.StreamName(sid), eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []eventstore.RecordedEvent
	for _, rec := range recs {
		if rec.Type == session.EventClaimsUpdated {
			out = append(out, rec)
		}
	}
	return out
}

// refresh refreshes with refreshToken.
func (r *rig) refresh(t *testing.T, refreshToken string) commands.LoginResult {
	t.Helper()
	res, err := r.st.Refresh.Handle(context.Background(), commands.Refresh{RefreshToken: refreshToken})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestAChangeToAUserReachesTheRefreshesOfItsOpenSessions(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	r.run(t)
	r.register(t, "ada@example.com")
	r.register(t, "bob@example.com")
	open := r.login(t, "ada@example.com")
	closed := r.login(t, "ada@example.com")
	other := r.login(t, "bob@example.com")
	revoked, err := r.st.Revoke.Handle(ctx, commands.RevokeSession{SessionID: closed.SessionID, UserID: closed.User.ID, Reason: session.ReasonLogout})
	if err != nil {
		t.Fatal(err)
	}
	before := r.refresh(t, open.RefreshToken)
	if slices.Contains(before.Claims.Roles, "auditor") {
		t.Fatalf("role before the grant: %+v", before.Claims)
	}
	// The logins are handled before the change is made.
	r.env.WaitCaughtUp(t, ctx, revoked.Position, sessionclaims.Name)

	pos := r.change(t, open.User.ID, "auditor", "Ada L.")
	r.env.WaitCaughtUp(t, ctx, pos, sessionclaims.Name)

	// Two changes, one update: the sync reads the user as it is now.
	updates := r.claimsUpdates(t, open.SessionID)
	if len(updates) != 1 {
		t.Fatalf("%d claims updates on the open session, want 1", len(updates))
	}
	var md events.Metadata
	if err := json.Unmarshal(updates[0].Metadata, &md); err != nil {
		t.Fatal(err)
	}
	if md.Actor.Kind != events.ActorSystem || md.CausationID == "" {
		t.Fatalf("update metadata %+v", md)
	}
	after := r.refresh(t, before.RefreshToken)
	if !slices.Contains(after.Claims.Roles, "auditor") || after.Claims.Name != "Ada L." || after.User.DisplayName != "Ada L." {
		t.Fatalf("refresh after the change: %+v, %+v", after.Claims, after.User)
	}
	if n := len(r.claimsUpdates(t, closed.SessionID)); n != 0 {
		t.Fatalf("a revoked session got %d claims updates", n)
	}
	if n := len(r.claimsUpdates(t, other.SessionID)); n != 0 {
		t.Fatalf("another user's session got %d claims updates", n)
	}
}

// A login reads the user, then the user changes and the change reaches the
// log before the session: the policy handles the change first (no session
// yet) and the login next, where it finds the change.
func TestALoginThatReadTheUserBeforeAChangeGetsIt(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	r.run(t)
	r.register(t, "cy@example.com")
	first := r.login(t, "cy@example.com")
	r.change(t, first.User.ID, "auditor", "Cy")
	// The racing login's session, started with the claims read before the
	// change.
	rt, err := token.NewRefreshToken(uuid.New())
	if err != nil {
		t.Fatal(err)
	}
	s, err := session.Start(session.StartParams{SessionID: rt.SessionID(), UserID: first.User.ID, Method: session.MethodPassword,
		AMR: []string{session.AMRPassword}, RefreshDigest: session.Digest(rt.Digest()),
		Claims: &session.Claims{Email: "cy@example.com", Name: "cy@example.com", Roles: first.Claims.Roles}}, time.Now(), session.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.st.Sessions.Append(ctx, session.StreamName(rt.SessionID()), 0, commands.Meta{}, s.Changes())
	if err != nil {
		t.Fatal(err)
	}
	r.env.WaitCaughtUp(t, ctx, res.Position, sessionclaims.Name)
	got := r.refresh(t, rt.Encode())
	if !slices.Contains(got.Claims.Roles, "auditor") || got.Claims.Name != "Cy" {
		t.Fatalf("refresh of the racing login: %+v", got.Claims)
	}
}

// The policy keeps its place: a change made while no runner runs reaches
// the sessions when one starts again.
func TestAChangeWhileThePolicyIsStoppedIsHandledWhenItResumes(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	ctx := context.Background()
	stop := r.run(t)
	r.register(t, "di@example.com")
	login := r.login(t, "di@example.com")
	revoked, err := r.st.Revoke.Handle(ctx, commands.RevokeSession{SessionID: r.login(t, "di@example.com").SessionID, UserID: login.User.ID,
		Reason: session.ReasonLogout})
	if err != nil {
		t.Fatal(err)
	}
	r.env.WaitCaughtUp(t, ctx, revoked.Position, sessionclaims.Name)
	stop()

	pos := r.change(t, login.User.ID, "auditor", "Di")
	if n := len(r.claimsUpdates(t, login.SessionID)); n != 0 {
		t.Fatalf("%d claims updates with no runner", n)
	}
	r.run(t)
	r.env.WaitCaughtUp(t, ctx, pos, sessionclaims.Name)
	if n := len(r.claimsUpdates(t, login.SessionID)); n != 1 {
		t.Fatalf("%d claims updates after the restart, want 1", n)
	}
	if got := r.refresh(t, login.RefreshToken); !slices.Contains(got.Claims.Roles, "auditor") {
		t.Fatalf("refresh after the restart: %+v", got.Claims)
	}
}
