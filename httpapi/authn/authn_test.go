package authn_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/authn"
	"github.com/authledger/authledger/httpapi/errtable"
	"github.com/authledger/authledger/migrations"
	"github.com/authledger/authledger/test/identitytest"
	"github.com/authledger/authledger/test/openapitest"
	"github.com/authledger/authledger/test/pgtest"
)

// env is the identity write side on a migrated database, with a probe
// route behind the middleware.
type env struct {
	t     *testing.T
	ctx   context.Context
	store *pg.Store
	st    *identitytest.Stack
}

func newEnv(t *testing.T, url string) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := migrations.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	store, err := pg.Open(ctx, pg.Config{ConnString: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return &env{t: t, ctx: ctx, store: store, st: identitytest.New(t, ctx, store, store.Pool())}
}

// answer is a probe's status and headers.
type answer struct {
	Status int
	Header http.Header
}

// serve mounts the middleware with rev in front of a probe route.
func (e *env) serve(rev *authn.Revocations) func(bearer string) answer {
	engine, err := httpapi.New(httpapi.Config{Logger: slog.New(slog.DiscardHandler), OpenAPI: []byte("openapi: 3.1.0"), Errors: errtable.Table()})
	if err != nil {
		e.t.Fatal(err)
	}
	engine.GET("/probe", authn.Middleware(e.st.Verifier, rev), func(c *gin.Context) {
		p, _ := httpapi.Caller(c)
		c.JSON(200, gin.H{"sub": p.UserID})
	})
	srv := httptest.NewServer(openapitest.Handler(e.t, engine, openapitest.TestRoutes("GET /probe")))
	e.t.Cleanup(srv.Close)
	return func(bearer string) answer {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/probe", nil)
		if bearer != "" {
			req.Header.Set("Authorization", bearer)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			e.t.Fatal(err)
		}
		_ = resp.Body.Close()
		return answer{Status: resp.StatusCode, Header: resp.Header}
	}
}

// session starts a session in the log and returns its ids and an access
// token for it.
func (e *env) session() (uid, sid uuid.UUID, access string) {
	e.t.Helper()
	now := time.Now()
	uid, sid = uuid.New(), uuid.New()
	rt, _ := token.NewRefreshToken(sid)
	s, err := session.Start(session.StartParams{SessionID: sid, UserID: uid, Method: session.MethodPassword, AMR: []string{"pwd"}, RefreshDigest: session.Digest(rt.Digest())}, now, session.DefaultPolicy())
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.Sessions.Append(e.ctx, session.StreamName(sid), 0, commands.Meta{}, s.Changes()); err != nil {
		e.t.Fatal(err)
	}
	access, _, err = e.st.TokenIssuer.Issue(token.Subject{UserID: uid, SessionID: sid, AMR: []string{"pwd"}, Roles: []string{"user"}}, now)
	if err != nil {
		e.t.Fatal(err)
	}
	return uid, sid, access
}

func (e *env) revoke(uid, sid uuid.UUID) {
	e.t.Helper()
	if _, err := e.st.Revoke.Handle(e.ctx, commands.RevokeSession{SessionID: sid, UserID: uid, Reason: session.ReasonLogout}); err != nil {
		e.t.Fatal(err)
	}
}

func TestMiddlewareRejectsRevokedSessionsWithinASecond(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pgtest.NewDatabase(t))
	get := e.serve(e.st.Revocations(t, e.store, e.store.Pool()))
	uid, sid, access := e.session()
	if resp := get("Bearer " + access); resp.Status != http.StatusOK {
		t.Fatalf("valid token: %d", resp.Status)
	}
	for _, bad := range []string{"", "Bearer", "Basic abc", "Bearer not.a.jwt"} {
		if resp := get(bad); resp.Status != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%q: %d %s", bad, resp.Status, resp.Header.Get("Content-Type"))
		}
	}
	e.revoke(uid, sid)
	deadline := time.Now().Add(time.Second)
	for get("Bearer "+access).Status != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("revoked session still accepted after one second")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A set whose feed cannot vouch for it (never started here, as after an
// outage that stalled it) is not trusted: the session stream decides.
func TestABlindRevocationSetReadsTheSessionStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pgtest.NewDatabase(t))
	rev, err := authn.NewRevocations(authn.RevocationsConfig{TTL: time.Hour, Store: e.store, Registry: e.st.Registry})
	if err != nil {
		t.Fatal(err)
	}
	stale := time.Now().Add(-time.Minute)
	rev.Watch(func() time.Time { return stale })
	get := e.serve(rev)

	uid, sid, access := e.session()
	_, _, other := e.session()
	if resp := get("Bearer " + access); resp.Status != http.StatusOK {
		t.Fatalf("open session: %d", resp.Status)
	}
	e.revoke(uid, sid)
	// No feed runs: only the stream read can see the revocation, and it
	// must, at once.
	if resp := get("Bearer " + access); resp.Status != http.StatusUnauthorized {
		t.Fatalf("revoked session while the feed is blind: %d, want 401", resp.Status)
	}
	if resp := get("Bearer " + other); resp.Status != http.StatusOK {
		t.Fatalf("another open session while the feed is blind: %d, want 200", resp.Status)
	}
	// A session the log does not have is refused.
	forged, _, err := e.st.TokenIssuer.Issue(token.Subject{UserID: uuid.New(), SessionID: uuid.New(), AMR: []string{"pwd"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if resp := get("Bearer " + forged); resp.Status != http.StatusUnauthorized {
		t.Fatalf("token of an unknown session: %d, want 401", resp.Status)
	}
}

// With the database down, the feed cannot vouch and the stream cannot be
// read: a valid token is refused with 503 and Retry-After, never accepted
// blind; once the database is back, a logout bites within a second.
func TestTheTokenCheckFailsClosedWhileTheLogIsDown(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	e := newEnv(t, cluster.URL)
	get := e.serve(e.st.Revocations(t, e.store, e.store.Pool()))
	uid, sid, access := e.session()
	if resp := get("Bearer " + access); resp.Status != http.StatusOK {
		t.Fatalf("before the outage: %d", resp.Status)
	}

	cluster.Stop()
	// The set is trusted for DefaultFreshness after its last vouch; past
	// it every answer is 503.
	time.Sleep(authn.DefaultFreshness + 300*time.Millisecond)
	resp := get("Bearer " + access)
	if resp.Status != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("during the outage: %d Retry-After=%q %s, want 503 problem with Retry-After",
			resp.Status, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
	}

	cluster.Start()
	deadline := time.Now().Add(30 * time.Second)
	for get("Bearer "+access).Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the token check did not recover after the database came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.revoke(uid, sid)
	deadline = time.Now().Add(time.Second)
	for get("Bearer "+access).Status != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatal("after the outage, a revoked session is still accepted after one second")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
