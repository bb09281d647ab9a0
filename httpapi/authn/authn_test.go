package authn_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/authn"
	"github.com/authledger/authledger/migrations"
	"github.com/authledger/authledger/test/pgtest"
)

func TestMiddlewareRejectsRevokedSessionsWithinASecond(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	url := pgtest.NewDatabase(t)
	if err := migrations.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	store, err := pg.Open(ctx, pg.Config{ConnString: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })

	now := time.Now()
	k, _ := keys.Generate(keys.DefaultAlgorithm)
	ring, err := keys.NewKeyRing(keys.Entry{Key: k, Lifecycle: keys.Lifecycle{AddedAt: now.Add(-time.Hour), ActivatedAt: now.Add(-time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := token.DefaultConfig("https://id.example.test")
	issuer, _ := token.NewIssuer(cfg, ring)
	verifier, err := token.NewVerifier(cfg, ring)
	if err != nil {
		t.Fatal(err)
	}
	rev := authn.NewRevocations(cfg.MaxKeyRetention())
	go func() { _ = rev.Run(ctx, store) }()

	engine, err := httpapi.New(httpapi.Config{Logger: slog.New(slog.DiscardHandler), OpenAPI: []byte("openapi: 3.1.0")})
	if err != nil {
		t.Fatal(err)
	}
	engine.GET("/probe", authn.Middleware(verifier, rev), func(c *gin.Context) {
		cl, _ := authn.Claims(c)
		c.JSON(200, gin.H{"sub": cl.UserID})
	})
	srv := httptest.NewServer(engine)
	t.Cleanup(srv.Close)

	reg := events.NewRegistry()
	_ = session.RegisterEvents(reg)
	repo, _ := commands.NewRepository(store, reg, session.FromHistory)
	uid, sid := uuid.New(), uuid.New()
	rt, _ := token.NewRefreshToken(sid)
	s, err := session.Start(session.StartParams{SessionID: sid, UserID: uid, Method: session.MethodPassword, AMR: []string{"pwd"}, RefreshDigest: session.Digest(rt.Digest())}, now, session.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Append(ctx, session.StreamName(sid), 0, commands.Meta{}, s.Changes()); err != nil {
		t.Fatal(err)
	}
	access, _, _ := issuer.Issue(token.Subject{UserID: uid, SessionID: sid, AMR: []string{"pwd"}, Roles: []string{"user"}}, now)

	get := func(authz string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/probe", nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	if code, _ := get("Bearer " + access); code != 200 {
		t.Fatalf("valid token: %d", code)
	}
	for _, bad := range []string{"", "Bearer", "Basic abc", "Bearer not.a.jwt"} {
		if code, ct := get(bad); code != 401 || ct != "application/problem+json" {
			t.Fatalf("%q: %d %s", bad, code, ct)
		}
	}
	revoke := &commands.RevokeSessionHandler{Sessions: repo}
	if _, err := revoke.Handle(ctx, commands.RevokeSession{SessionID: sid, UserID: uid, Reason: session.ReasonLogout}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		code, _ := get("Bearer " + access)
		if code == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revoked session still accepted after one second")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
