package userviews_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/test/identitytest"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/projections/userviews"
)

// cmds are the real identity command handlers over a test's store.
type cmds struct {
	register *commands.RegisterHandler
	login    *commands.LoginHandler
	refresh  *commands.RefreshHandler
	revoke   *commands.RevokeSessionHandler
	users    *commands.Repository[*user.User]
	sessions *commands.Repository[*session.Session]
}

func newCmds(t *testing.T, ctx context.Context, env *projtest.Env) *cmds {
	t.Helper()
	st := identitytest.New(t, ctx, env.Store, env.Store.Pool())
	return &cmds{
		register: st.Register,
		login:    st.Login,
		refresh:  st.Refresh,
		revoke:   st.Revoke,
		users:    st.Users,
		sessions: st.Sessions,
	}
}

func newProjections(t *testing.T) (*userviews.Profiles, *userviews.Sessions) {
	t.Helper()
	return userviews.NewProfiles(), userviews.NewSessions()
}

// run starts a runner over both projections until stop or the test's end.
func run(t *testing.T, env *projtest.Env) (stop func()) {
	t.Helper()
	p, s := newProjections(t)
	return env.Run(t, p, s)
}

// story drives the commands: two users, logins, a refresh, a logout, a
// reuse, a lockout, a role and a new display name.
type story struct {
	alice, bob       uuid.UUID
	aliceS1, aliceS2 uuid.UUID // s1 refreshed from a new address; s2 logged out
	aliceS3          uuid.UUID // revoked by reuse detection
	bobS1            uuid.UUID
	bobLockedUntil   time.Time // of a lockout under the former policy
	last             eventstore.Position
}

func meta(ip, ua string) commands.Meta {
	return commands.AnonymousMeta("req-"+uuid.NewString()[:8], ip, ua)
}

func (c *cmds) mustLogin(t *testing.T, ctx context.Context, email, pw, ip, ua string) commands.LoginResult {
	t.Helper()
	r, err := c.login.Handle(ctx, commands.Login{Email: email, Password: pw, Meta: meta(ip, ua)})
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	return r
}

func tell(t *testing.T, ctx context.Context, c *cmds) *story {
	t.Helper()
	var s story
	var last eventstore.Position
	note := func(p eventstore.Position) {
		if p.Compare(last) > 0 {
			last = p
		}
	}
	r, err := c.register.Handle(ctx, commands.Register{Email: "  Alice@Example.COM ", Password: "correct horse battery", DisplayName: "Alice", Meta: meta("192.0.2.1", "reg/1")})
	if err != nil {
		t.Fatal(err)
	}
	s.alice = r.UserID
	note(r.Position)
	r, err = c.register.Handle(ctx, commands.Register{Email: "bob@example.com", Password: "another long secret", DisplayName: "Bob", Meta: meta("192.0.2.2", "reg/1")})
	if err != nil {
		t.Fatal(err)
	}
	s.bob = r.UserID
	note(r.Position)

	l1 := c.mustLogin(t, ctx, "alice@example.com", "correct horse battery", "198.51.100.1", "Firefox/140")
	s.aliceS1 = l1.SessionID
	note(l1.Position)
	l2 := c.mustLogin(t, ctx, "alice@example.com", "correct horse battery", "198.51.100.2", "curl/8")
	s.aliceS2 = l2.SessionID
	note(l2.Position)
	l3 := c.mustLogin(t, ctx, "alice@example.com", "correct horse battery", "198.51.100.3", "Safari/18")
	s.aliceS3 = l3.SessionID
	note(l3.Position)
	b1 := c.mustLogin(t, ctx, "bob@example.com", "another long secret", "203.0.113.9", "Bob's phone")
	s.bobS1 = b1.SessionID
	note(b1.Position)

	// Refresh from a new address; the user agent is not sent.
	rf, err := c.refresh.Handle(ctx, commands.Refresh{RefreshToken: l1.RefreshToken, Meta: meta("198.51.100.77", "")})
	if err != nil {
		t.Fatal(err)
	}
	note(rf.Position)
	res, err := c.revoke.Handle(ctx, commands.RevokeSession{SessionID: s.aliceS2, UserID: s.alice, Reason: session.ReasonLogout, Meta: meta("198.51.100.2", "curl/8")})
	if err != nil {
		t.Fatal(err)
	}
	note(res.Position)
	// Reuse: rotate s3, then present its first token again.
	rf3, err := c.refresh.Handle(ctx, commands.Refresh{RefreshToken: l3.RefreshToken, Meta: meta("198.51.100.3", "Safari/18")})
	if err != nil {
		t.Fatal(err)
	}
	note(rf3.Position)
	if _, err := c.refresh.Handle(ctx, commands.Refresh{RefreshToken: l3.RefreshToken, Meta: meta("192.0.2.66", "thief")}); err == nil {
		t.Fatal("reused refresh token accepted")
	}
	// Five wrong passwords for Bob, then a lockout as the former policy
	// recorded it (the throttle records none, docs/login-throttling.md, but old
	// streams hold them and the profile still shows them).
	for range 5 {
		if _, err := c.login.Handle(ctx, commands.Login{Email: "bob@example.com", Password: "wrong password!", Meta: meta("192.0.2.66", "thief")}); err == nil {
			t.Fatal("wrong password accepted")
		}
	}
	m := commands.Meta{Actor: events.Actor{Kind: events.ActorSystem, ID: "test"}}
	// The failures are appended off the response path: wait for them
	// before appending at the stream's revision.
	var bobU *user.User
	deadline := time.Now().Add(10 * time.Second)
	for {
		bobU, err = c.users.Load(ctx, user.StreamName(s.bob))
		if err != nil {
			t.Fatal(err)
		}
		if bobU.Version() >= 6 { // registered and five failures
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's failures were not appended: version %d", bobU.Version())
		}
		time.Sleep(20 * time.Millisecond)
	}
	lockedAt := time.Now().UTC().Truncate(time.Microsecond)
	s.bobLockedUntil = lockedAt.Add(15 * time.Minute)
	locked, err := c.users.Append(ctx, user.StreamName(s.bob), bobU.Version(), m,
		[]events.Event{user.Locked{UserID: s.bob, LockedAt: lockedAt, LockedUntil: s.bobLockedUntil, Lockout: 1}})
	if err != nil {
		t.Fatal(err)
	}
	note(locked.Position)
	res, err = c.users.Update(ctx, user.StreamName(s.alice), m, func(u *user.User) error {
		if err := u.GrantRole("auditor", time.Now()); err != nil {
			return err
		}
		if err := u.GrantRole("admin", time.Now()); err != nil {
			return err
		}
		if err := u.RevokeRole("auditor", time.Now()); err != nil {
			return err
		}
		if err := u.GrantRole("a.b", time.Now()); err != nil {
			return err
		}
		return u.ChangeDisplayName("Alice B.", time.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
	note(res.Position)
	// The last append's position may be below one of Bob's failures
	// appended in its own transaction; wait for the whole log.
	all := readAll(t, ctx, c)
	note(all[len(all)-1].Position)
	s.last = last
	return &s
}

func readAll(t *testing.T, ctx context.Context, c *cmds) []eventstore.RecordedEvent {
	t.Helper()
	all, err := c.users.Store().ReadAll(ctx, eventstore.ReadAllOptions{})
	if err != nil || len(all) == 0 {
		t.Fatalf("read all: %d events, %v", len(all), err)
	}
	return all
}

func us(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func TestProjectionsFollowTheCommands(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	env := projtest.New(t)
	c := newCmds(t, ctx, env)
	run(t, env)
	s := tell(t, ctx, c)
	env.WaitCaughtUp(t, ctx, s.last, userviews.ProfilesName, userviews.SessionsName)
	db := env.Admin

	// Profiles agree with the user aggregates folded from the log.
	for _, id := range []uuid.UUID{s.alice, s.bob} {
		u, err := c.users.Load(ctx, user.StreamName(id))
		if err != nil {
			t.Fatal(err)
		}
		p, err := userviews.GetProfile(ctx, db, id)
		if err != nil {
			t.Fatal(err)
		}
		if p.UserID != id || p.Email != u.Email() || p.DisplayName != u.DisplayName() || !reflect.DeepEqual(p.Roles, u.Roles()) ||
			!p.CreatedAt.Equal(us(u.RegisteredAt())) {
			t.Fatalf("profile %+v, aggregate email %q name %q roles %v registered %s", p, u.Email(), u.DisplayName(), u.Roles(), u.RegisteredAt())
		}
	}
	alice, _ := userviews.GetProfile(ctx, db, s.alice)
	if alice.Email != "alice@example.com" || alice.DisplayName != "Alice B." || !reflect.DeepEqual(alice.Roles, []string{"a.b", "admin", "user"}) {
		t.Fatalf("alice = %+v", alice)
	}
	// Last login is Alice's third login, the latest session start.
	s3, err := c.sessions.Load(ctx, session.StreamName(s.aliceS3))
	if err != nil {
		t.Fatal(err)
	}
	if alice.LastLoginAt == nil || !alice.LastLoginAt.Equal(us(s3.StartedAt())) || alice.LockedUntil != nil || alice.Lockouts != 0 {
		t.Fatalf("alice last login %v (want %s), locked %v", alice.LastLoginAt, s3.StartedAt(), alice.LockedUntil)
	}
	bob, _ := userviews.GetProfile(ctx, db, s.bob)
	if bob.LockedUntil == nil || !bob.LockedUntil.Equal(s.bobLockedUntil) || bob.Lockouts != 1 || bob.LastFailedLoginAt == nil || bob.LastLoginAt == nil {
		t.Fatalf("bob = %+v (locked until %s under the former policy)", bob, s.bobLockedUntil)
	}
	if _, err := userviews.GetProfile(ctx, db, uuid.New()); !errors.Is(err, userviews.ErrNotFound) {
		t.Fatalf("unknown profile: %v", err)
	}

	// Sessions agree with the session aggregates.
	for _, id := range []uuid.UUID{s.aliceS1, s.aliceS2, s.aliceS3, s.bobS1} {
		a, err := c.sessions.Load(ctx, session.StreamName(id))
		if err != nil {
			t.Fatal(err)
		}
		row, err := userviews.GetSession(ctx, db, id)
		if err != nil {
			t.Fatal(err)
		}
		reason, at, revoked := a.Revoked()
		if row.UserID != a.UserID() || row.Method != a.Method() || !reflect.DeepEqual(row.AMR, a.AMR()) ||
			!row.StartedAt.Equal(us(a.StartedAt())) || !row.LastUsedAt.Equal(us(a.LastUsedAt())) ||
			!row.ExpiresAt.Equal(us(a.ExpiresAt())) || !row.IdleExpiresAt.Equal(us(a.IdleExpiresAt())) ||
			row.Refreshes != a.Generation() || (row.RevokedAt != nil) != revoked ||
			(revoked && (!row.RevokedAt.Equal(us(at)) || *row.RevokeReason != string(reason))) {
			t.Fatalf("session %s row %+v differs from its aggregate", id, row)
		}
	}
	s1, _ := userviews.GetSession(ctx, db, s.aliceS1)
	if s1.IP != "198.51.100.77" || s1.UserAgent != "Firefox/140" || s1.Refreshes != 1 || !s1.LastUsedAt.After(s1.StartedAt) ||
		s1.Method != session.MethodPassword || !reflect.DeepEqual(s1.AMR, []string{session.AMRPassword}) {
		t.Fatalf("refreshed session = %+v", s1)
	}
	if s2, _ := userviews.GetSession(ctx, db, s.aliceS2); s2.RevokeReason == nil || *s2.RevokeReason != "logout" || s2.ReuseDetectedAt != nil {
		t.Fatalf("logged out session = %+v", s2)
	}
	if s3r, _ := userviews.GetSession(ctx, db, s.aliceS3); s3r.RevokeReason == nil || *s3r.RevokeReason != "reuse_detected" || s3r.ReuseDetectedAt == nil {
		t.Fatalf("reused session = %+v", s3r)
	}

	// The list: Alice's one live session; Bob's own; nothing at the end of
	// its absolute lifetime.
	now := time.Now()
	list, total, err := userviews.ListActiveSessions(ctx, db, s.alice, now, 1, 20)
	if err != nil || total != 1 || len(list) != 1 || list[0].SessionID != s.aliceS1 {
		t.Fatalf("alice's sessions: %d %+v %v", total, list, err)
	}
	if list, total, _ := userviews.ListActiveSessions(ctx, db, s.bob, now, 1, 20); total != 1 || list[0].SessionID != s.bobS1 {
		t.Fatalf("bob's sessions: %d %+v", total, list)
	}
	if list, total, _ := userviews.ListActiveSessions(ctx, db, s.alice, s1.IdleExpiresAt, 1, 20); total != 0 || len(list) != 0 {
		t.Fatalf("sessions past their idle end: %d %+v", total, list)
	}
	if list, total, _ := userviews.ListActiveSessions(ctx, db, s.alice, now, 2, 20); total != 1 || len(list) != 0 || list == nil {
		t.Fatalf("page past the end: %d %+v", total, list)
	}
}

func TestListPagesNewestFirst(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	env := projtest.New(t)
	c := newCmds(t, ctx, env)
	run(t, env)
	r, err := c.register.Handle(ctx, commands.Register{Email: "carol@example.com", Password: "correct horse battery", DisplayName: "Carol"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	var last eventstore.Position
	for i := range 5 {
		l := c.mustLogin(t, ctx, "carol@example.com", "correct horse battery", fmt.Sprintf("192.0.2.%d", i), "ua")
		ids = append(ids, l.SessionID)
		last = l.Position
	}
	env.WaitCaughtUp(t, ctx, last, userviews.SessionsName)
	var got []uuid.UUID
	for page := 1; page <= 3; page++ {
		list, total, err := userviews.ListActiveSessions(ctx, env.Admin, r.UserID, time.Now(), page, 2)
		if err != nil || total != 5 {
			t.Fatalf("page %d: total %d %v", page, total, err)
		}
		for _, s := range list {
			got = append(got, s.SessionID)
		}
	}
	want := []uuid.UUID{ids[4], ids[3], ids[2], ids[1], ids[0]}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pages = %v, want newest first %v", got, want)
	}
}

// snapshot is every column of a view, as text, in a fixed order.
func snapshot(t *testing.T, ctx context.Context, env *projtest.Env, view, key string) []string {
	t.Helper()
	rows, err := env.Admin.Query(ctx, "SELECT v::text FROM "+pgx.Identifier{view}.Sanitize()+" v ORDER BY "+key)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRebuildEqualsLive(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	env := projtest.New(t)
	c := newCmds(t, ctx, env)
	stop := run(t, env)
	s := tell(t, ctx, c)
	env.WaitCaughtUp(t, ctx, s.last, userviews.ProfilesName, userviews.SessionsName)
	stop()
	live := map[string][]string{
		userviews.TableProfiles: snapshot(t, ctx, env, userviews.TableProfiles, "user_id"),
		userviews.TableSessions: snapshot(t, ctx, env, userviews.TableSessions, "session_id"),
	}
	if len(live[userviews.TableProfiles]) != 2 || len(live[userviews.TableSessions]) != 4 {
		t.Fatalf("live read models: %v", live)
	}
	for _, c := range []struct{ name, table, key string }{
		{userviews.ProfilesName, userviews.TableProfiles, "user_id"},
		{userviews.SessionsName, userviews.TableSessions, "session_id"},
	} {
		p, s := newProjections(t)
		cfg := env.Config(p, s)
		cfg.BatchSize = 3 // several transactions, each flushing a pgx batch
		prog, err := projector.Rebuild(ctx, cfg, c.name, projector.RebuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if prog.Generation != 2 {
			t.Fatalf("%s: rebuild built generation %d", c.name, prog.Generation)
		}
		got := snapshot(t, ctx, env, c.table, c.key)
		if !reflect.DeepEqual(got, live[c.table]) {
			t.Fatalf("%s: rebuild differs from the live read model:\nrebuilt %s\nlive    %s", c.name,
				strings.Join(got, "\n        "), strings.Join(live[c.table], "\n        "))
		}
	}
}

// A session event that cannot be decoded stops the projection; it is never
// skipped, and the profiles keep serving.
func TestUndecodableEventStopsOnlyItsProjection(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	env := projtest.New(t)
	c := newCmds(t, ctx, env)
	p, s := newProjections(t)
	r, err := projector.NewRunner(env.Config(p, s))
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() {
		rcancel()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	}()

	bad := projtest.Event(session.EventRefreshed, map[string]any{"session_id": "not a uuid"}, "u")
	if _, err := env.Store.Append(ctx, session.StreamName(uuid.New()), eventstore.Any{}, bad); err != nil {
		t.Fatal(err)
	}
	reg, err := c.register.Handle(ctx, commands.Register{Email: "dan@example.com", Password: "correct horse battery", DisplayName: "Dan"})
	if err != nil {
		t.Fatal(err)
	}
	env.WaitCaughtUp(t, ctx, reg.Position, userviews.ProfilesName)
	if _, err := userviews.GetProfile(ctx, env.Admin, reg.UserID); err != nil {
		t.Fatalf("profiles stopped too: %v", err)
	}
	for r.States()[userviews.SessionsName] != projector.StateFailed {
		select {
		case <-ctx.Done():
			t.Fatalf("sessions projection never failed: %v", r.States())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
