package session_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/events/eventstest"
)

var (
	t0        = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	sessionID = uuid.MustParse("5b0c3a4e-2f1d-4a8e-9c7b-6d5e4f3a2b1c")
	userID    = uuid.MustParse("0b8f7f0e-7c55-4b5e-9f59-8f6f3f2a9a10")
	policy    = session.DefaultPolicy()
	day       = 24 * time.Hour
)

// tok is the digest of the n-th refresh token of the session.
func tok(n int) session.Digest { return sha256.Sum256([]byte{byte(n)}) }

func started() session.Started {
	return session.Started{
		SessionID: sessionID, UserID: userID, Method: "password", AMR: []string{"pwd"},
		IP: "192.0.2.1", UserAgent: "test", RefreshDigest: tok(0), StartedAt: t0,
		IdleExpiresAt: t0.Add(7 * day), ExpiresAt: t0.Add(30 * day), Claims: claims(),
	}
}

func refreshed(gen int, at time.Time) session.Refreshed {
	return session.Refreshed{SessionID: sessionID, RefreshDigest: tok(gen), PreviousDigest: tok(gen - 1), Generation: gen,
		RefreshedAt: at, IdleExpiresAt: at.Add(7 * day), Terms: terms(), Claims: claims()}
}

// claims are the user's at login, as Started and every Refreshed carry them.
func claims() *session.Claims {
	return &session.Claims{Email: "ada@example.com", Name: "Ada", Roles: []string{"user"}}
}

// terms are started()'s, as every Refreshed repeats them.
func terms() *session.Terms {
	return &session.Terms{UserID: userID, Method: "password", AMR: []string{"pwd"}, StartedAt: t0, ExpiresAt: t0.Add(30 * day)}
}

func given(t *testing.T, history ...events.Event) *session.Session {
	t.Helper()
	s, err := session.FromHistory(history)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startedSession is a session refreshed n times, a minute apart.
func startedSession(t *testing.T, n int, more ...events.Event) *session.Session {
	t.Helper()
	h := []events.Event{started()}
	for i := 1; i <= n; i++ {
		h = append(h, refreshed(i, t0.Add(time.Duration(i)*time.Minute)))
	}
	return given(t, append(h, more...)...)
}

func thenEvents(t *testing.T, s *session.Session, want ...events.Event) {
	t.Helper()
	got := s.Changes()
	if len(want) == 0 && len(got) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %#v\nwant %#v", got, want)
	}
}

func TestStart(t *testing.T) {
	t.Parallel()
	s, err := session.Start(session.StartParams{SessionID: sessionID, UserID: userID, Method: "password", AMR: []string{"pwd"},
		IP: "192.0.2.1", UserAgent: "test", RefreshDigest: tok(0), Claims: claims()}, t0, policy)
	if err != nil {
		t.Fatal(err)
	}
	thenEvents(t, s, started())
	if err := s.CheckActive(t0); err != nil {
		t.Fatal(err)
	}
	if _, err := session.Start(session.StartParams{}, t0, policy); !errors.Is(err, session.ErrInvalidInput) {
		t.Fatalf("Start(empty) = %v", err)
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	grace := policy
	grace.RefreshGrace = 10 * time.Second
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	revoked := func(r session.Reason, when time.Time) session.Revoked {
		return session.Revoked{SessionID: sessionID, UserID: userID, Reason: r, RevokedAt: when}
	}
	for _, tc := range []struct {
		name      string
		history   []events.Event // after Started
		presented session.Digest
		next      session.Digest
		now       time.Time
		policy    session.Policy
		err       error
		want      []events.Event
	}{
		{
			name: "current token rotates", presented: tok(0), next: tok(1), now: at(time.Minute), policy: policy,
			want: []events.Event{refreshed(1, at(time.Minute))},
		},
		{
			name: "idle window follows the refresh but not past the absolute end", history: []events.Event{refreshed(1, at(25*day))},
			presented: tok(1), next: tok(2), now: at(26 * day), policy: policy,
			want: []events.Event{session.Refreshed{SessionID: sessionID, RefreshDigest: tok(2), PreviousDigest: tok(1), Generation: 2,
				RefreshedAt: at(26 * day), IdleExpiresAt: at(30 * day), Terms: terms(), Claims: claims()}},
		},
		{
			name: "rotated token is reuse and revokes", history: []events.Event{refreshed(1, at(time.Minute))},
			presented: tok(0), next: tok(9), now: at(2 * time.Minute), policy: policy, err: session.ErrReuseDetected,
			want: []events.Event{
				session.ReuseDetected{SessionID: sessionID, UserID: userID, PresentedDigest: tok(0), Generation: 0, DetectedAt: at(2 * time.Minute)},
				revoked(session.ReasonReuseDetected, at(2*time.Minute)),
			},
		},
		{
			name: "unknown token records nothing", presented: tok(77), next: tok(1), now: at(time.Minute), policy: policy,
			err: session.ErrInvalidToken,
		},
		{
			name: "previous token within grace rotates once more", history: []events.Event{refreshed(1, at(time.Minute))},
			presented: tok(0), next: tok(2), now: at(time.Minute + 5*time.Second), policy: grace,
			want: []events.Event{session.Refreshed{SessionID: sessionID, RefreshDigest: tok(2), PreviousDigest: tok(0), Generation: 2,
				RefreshedAt: at(time.Minute + 5*time.Second), IdleExpiresAt: at(time.Minute + 5*time.Second + 7*day), Grace: true, Terms: terms(), Claims: claims()}},
		},
		{
			name: "previous token after grace is reuse", history: []events.Event{refreshed(1, at(time.Minute))},
			presented: tok(0), next: tok(2), now: at(time.Minute + 11*time.Second), policy: grace, err: session.ErrReuseDetected,
			want: []events.Event{
				session.ReuseDetected{SessionID: sessionID, UserID: userID, PresentedDigest: tok(0), DetectedAt: at(time.Minute + 11*time.Second)},
				revoked(session.ReasonReuseDetected, at(time.Minute+11*time.Second)),
			},
		},
		{
			name: "grace is used once", history: []events.Event{refreshed(1, at(time.Minute)), func() events.Event {
				r := refreshed(2, at(time.Minute+time.Second))
				r.PreviousDigest, r.Grace = tok(0), true
				return r
			}()},
			presented: tok(0), next: tok(3), now: at(time.Minute + 2*time.Second), policy: grace, err: session.ErrReuseDetected,
			want: []events.Event{
				session.ReuseDetected{SessionID: sessionID, UserID: userID, PresentedDigest: tok(0), DetectedAt: at(time.Minute + 2*time.Second)},
				revoked(session.ReasonReuseDetected, at(time.Minute+2*time.Second)),
			},
		},
		{
			name: "the token skipped by a grace refresh is reuse", history: []events.Event{refreshed(1, at(time.Minute)), func() events.Event {
				r := refreshed(2, at(time.Minute+time.Second))
				r.PreviousDigest, r.Grace = tok(0), true
				return r
			}()},
			presented: tok(1), next: tok(3), now: at(time.Minute + 2*time.Second), policy: grace, err: session.ErrReuseDetected,
			want: []events.Event{
				session.ReuseDetected{SessionID: sessionID, UserID: userID, PresentedDigest: tok(1), Generation: 1, DetectedAt: at(time.Minute + 2*time.Second)},
				revoked(session.ReasonReuseDetected, at(time.Minute+2*time.Second)),
			},
		},
		{
			name: "idle timeout revokes", presented: tok(0), next: tok(1), now: at(7 * day), policy: policy, err: session.ErrExpired,
			want: []events.Event{revoked(session.ReasonIdleTimeout, at(7*day))},
		},
		{
			name: "absolute lifetime revokes", history: []events.Event{refreshed(1, at(29*day))},
			presented: tok(1), next: tok(2), now: at(30 * day), policy: policy, err: session.ErrExpired,
			want: []events.Event{revoked(session.ReasonAbsoluteLifetime, at(30*day))},
		},
		{
			name: "revoked session refuses and records nothing", history: []events.Event{revoked(session.ReasonLogout, at(time.Minute))},
			presented: tok(0), next: tok(1), now: at(2 * time.Minute), policy: policy, err: session.ErrRevoked,
		},
		{
			name: "next must differ", presented: tok(0), next: tok(0), now: at(time.Minute), policy: policy, err: session.ErrInvalidInput,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			history := append([]events.Event{started()}, tc.history...)
			s := given(t, history...)
			err := s.Refresh(session.RefreshParams{Presented: tc.presented, Next: tc.next}, tc.now, tc.policy)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("Refresh = %v, want %v", err, tc.err)
			}
			thenEvents(t, s, tc.want...)

			// Resumed from the last event alone, the session decides the
			// same, or asks for the whole stream having recorded nothing.
			r, ok := session.Resume(history[len(history)-1], len(history))
			if !ok {
				t.Fatalf("Resume(%T) = false", history[len(history)-1])
			}
			if r.Version() != s.Version() {
				t.Fatalf("resumed version %d, folded %d", r.Version(), s.Version())
			}
			err = r.Refresh(session.RefreshParams{Presented: tc.presented, Next: tc.next}, tc.now, tc.policy)
			if errors.Is(err, session.ErrHistoryNeeded) {
				if len(r.Changes()) != 0 {
					t.Fatalf("ErrHistoryNeeded after recording %#v", r.Changes())
				}
				if !errors.Is(tc.err, session.ErrReuseDetected) && !errors.Is(tc.err, session.ErrInvalidToken) {
					t.Fatalf("resumed session asked for the history where the fold answered %v", tc.err)
				}
				return
			}
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("resumed Refresh = %v, want %v", err, tc.err)
			}
			thenEvents(t, r, tc.want...)
		})
	}
}

func TestResumeNeedsAnEventThatCarriesTheSession(t *testing.T) {
	t.Parallel()
	old := refreshed(1, t0.Add(time.Minute))
	old.Terms = nil // recorded before Refreshed carried its terms
	for _, last := range []events.Event{old, session.ReuseDetected{SessionID: sessionID}} {
		if _, ok := session.Resume(last, 2); ok {
			t.Errorf("Resume(%#v) = true", last)
		}
	}
	// A resumed session keeps what a folded one reports.
	folded := startedSession(t, 3)
	r, ok := session.Resume(refreshed(3, t0.Add(3*time.Minute)), 4)
	if !ok {
		t.Fatal("Resume = false")
	}
	if r.ID() != folded.ID() || r.UserID() != folded.UserID() || r.Method() != folded.Method() ||
		!reflect.DeepEqual(r.AMR(), folded.AMR()) || !r.StartedAt().Equal(folded.StartedAt()) ||
		!r.ExpiresAt().Equal(folded.ExpiresAt()) || !r.IdleExpiresAt().Equal(folded.IdleExpiresAt()) ||
		!r.LastUsedAt().Equal(folded.LastUsedAt()) || r.Generation() != folded.Generation() || r.Version() != folded.Version() {
		t.Fatalf("resumed %+v, folded %+v", r, folded)
	}
	rc, rok := r.Claims()
	fc, fok := folded.Claims()
	if !rok || !fok || !reflect.DeepEqual(rc, fc) {
		t.Fatalf("resumed claims %+v, folded %+v", rc, fc)
	}
}

func TestUpdateClaims(t *testing.T) {
	t.Parallel()
	admin := session.Claims{Email: "ada@example.com", Name: "Ada L.", Roles: []string{"admin", "user"}}
	updated := session.ClaimsUpdated{SessionID: sessionID, UserID: userID, Claims: admin, UpdatedAt: t0.Add(time.Hour)}
	for _, tc := range []struct {
		name    string
		history []events.Event
		claims  session.Claims
		now     time.Time
		want    []events.Event
	}{
		{name: "changed claims are recorded", history: []events.Event{started()}, claims: admin, now: t0.Add(time.Hour), want: []events.Event{updated}},
		{name: "the same claims, roles in another order, record nothing", history: []events.Event{started(), refreshed(1, t0.Add(time.Minute))},
			claims: session.Claims{Email: "ada@example.com", Name: "Ada", Roles: []string{"user"}}, now: t0.Add(time.Hour)},
		{name: "claims already updated record nothing", history: []events.Event{started(), updated}, claims: admin, now: t0.Add(2 * time.Hour)},
		{name: "a revoked session is left alone", history: []events.Event{started(),
			session.Revoked{SessionID: sessionID, UserID: userID, Reason: session.ReasonLogout, RevokedAt: t0.Add(time.Minute)}},
			claims: admin, now: t0.Add(time.Hour)},
		{name: "an expired session is left alone", history: []events.Event{started()}, claims: admin, now: t0.Add(8 * day)},
		{name: "a session started without claims gets them", history: []events.Event{func() events.Event {
			s := started()
			s.Claims = nil
			return s
		}()}, claims: admin, now: t0.Add(time.Hour), want: []events.Event{updated}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := given(t, tc.history...)
			if err := s.UpdateClaims(tc.claims, tc.now); err != nil {
				t.Fatal(err)
			}
			thenEvents(t, s, tc.want...)
		})
	}
	if err := given(t).UpdateClaims(admin, t0); !errors.Is(err, session.ErrNotStarted) {
		t.Fatalf("empty stream: %v", err)
	}

	// The next refresh carries the new claims, and a session resumed from
	// that refresh has them.
	s := given(t, started(), updated)
	if err := s.Refresh(session.RefreshParams{Presented: tok(0), Next: tok(1)}, t0.Add(2*time.Hour), policy); err != nil {
		t.Fatal(err)
	}
	r, ok := session.Resume(s.Changes()[0], 3)
	if !ok {
		t.Fatal("Resume = false")
	}
	for _, got := range []*session.Session{s, r} {
		if c, ok := got.Claims(); !ok || !c.Equal(admin) {
			t.Fatalf("claims after the update: %+v, %v", c, ok)
		}
	}
	// A session whose last event is the update is folded whole.
	if _, ok := session.Resume(updated, 2); ok {
		t.Fatal("Resume(ClaimsUpdated) = true")
	}
}

func TestReuseRevokesTheNewerTokenToo(t *testing.T) {
	t.Parallel()
	s := startedSession(t, 1)
	_ = s.Refresh(session.RefreshParams{Presented: tok(0), Next: tok(5)}, t0.Add(time.Hour), policy)
	// the repository appends, then the legitimate holder of tok(1) tries:
	s = given(t, append([]events.Event{started(), refreshed(1, t0.Add(time.Minute))}, s.Changes()...)...)
	if err := s.Refresh(session.RefreshParams{Presented: tok(1), Next: tok(2)}, t0.Add(time.Hour), policy); !errors.Is(err, session.ErrRevoked) {
		t.Fatalf("newer token after reuse: %v", err)
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	s := startedSession(t, 2)
	if err := s.Revoke(session.ReasonLogout, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	thenEvents(t, s, session.Revoked{SessionID: sessionID, UserID: userID, Reason: session.ReasonLogout, RevokedAt: t0.Add(time.Hour)})
	if err := s.Revoke(session.ReasonDeleted, t0.Add(2*time.Hour)); err != nil {
		t.Fatal("second revoke failed:", err)
	}
	if len(s.Changes()) != 1 {
		t.Fatal("second revoke recorded an event")
	}
	if err := s.CheckActive(t0.Add(time.Hour)); !errors.Is(err, session.ErrRevoked) {
		t.Fatalf("CheckActive = %v", err)
	}
	if err := startedSession(t, 0).Revoke("because", t0); !errors.Is(err, session.ErrInvalidInput) {
		t.Fatalf("unknown reason: %v", err)
	}
	if err := given(t).Revoke(session.ReasonLogout, t0); !errors.Is(err, session.ErrNotStarted) {
		t.Fatalf("empty stream: %v", err)
	}
}

func TestExpireIfDue(t *testing.T) {
	t.Parallel()
	s := startedSession(t, 0)
	_ = s.ExpireIfDue(t0.Add(day))
	thenEvents(t, s)
	_ = s.ExpireIfDue(t0.Add(8 * day))
	thenEvents(t, s, session.Revoked{SessionID: sessionID, UserID: userID, Reason: session.ReasonIdleTimeout, RevokedAt: t0.Add(8 * day)})
}

func TestOldestBeyondLimit(t *testing.T) {
	t.Parallel()
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	active := []session.Summary{{c, t0.Add(2 * time.Hour)}, {a, t0}, {b, t0.Add(time.Hour)}}
	for _, tc := range []struct {
		limit int
		want  []uuid.UUID
	}{{0, nil}, {4, nil}, {3, []uuid.UUID{a}}, {2, []uuid.UUID{a, b}}, {1, []uuid.UUID{a, b, c}}} {
		if got := session.OldestBeyondLimit(active, tc.limit); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("limit %d: %v, want %v", tc.limit, got, tc.want)
		}
	}
}

func TestEventsRoundTripUnderTheirOwnNames(t *testing.T) {
	t.Parallel()
	eventstest.RoundTrip(t, session.RegisterEvents, session.AllEvents())
	r := events.NewRegistry()
	if err := session.RegisterEvents(r); err != nil {
		t.Fatal(err)
	}
	if len(r.Names()) != len(session.AllEvents()) {
		t.Fatal("two types share a name")
	}
	for _, e := range append(session.AllEvents(), started(), refreshed(3, t0)) {
		name, data, err := events.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Decode(name, data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) || got.EventName() != name || !strings.HasSuffix(name, ".v1") {
			t.Errorf("%s: round trip gave %#v", name, got)
		}
	}
}

func TestDigestsAreHexAndNoTokenIsStored(t *testing.T) {
	t.Parallel()
	b, _ := json.Marshal(started())
	d0 := tok(0)
	if !strings.Contains(string(b), `"refresh_digest":"`+hex.EncodeToString(d0[:])+`"`) {
		t.Fatalf("digest is not lower-case hex in %s", b)
	}
	var d session.Digest
	if err := d.UnmarshalText([]byte("zz")); err == nil {
		t.Fatal("short digest accepted")
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	if err := session.DefaultPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (session.Policy{RefreshGrace: time.Hour}).Validate(); err == nil {
		t.Fatal("invalid policy accepted")
	}
}
