package token_test

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/domain/session"
)

// How a login handler uses the pieces: a refresh token that names a new
// session, the session stream started with its digest only, and an access
// token for the session. (Password check, lockout and the appends are the
// command layer's.)
func Example_login() {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	k, _ := keys.Generate(keys.DefaultAlgorithm)
	ring, _ := keys.NewKeyRing(keys.Entry{Key: k, Lifecycle: keys.Lifecycle{AddedAt: now, ActivatedAt: now}})
	issuer, _ := token.NewIssuer(token.DefaultConfig("https://id.example.test"), ring)

	userID, sessionID := uuid.New(), uuid.New() // chosen before any append
	rt, _ := token.NewRefreshToken(sessionID)
	s, _ := session.Start(session.StartParams{
		SessionID: sessionID, UserID: userID, Method: "password", AMR: []string{"pwd"},
		RefreshDigest: session.Digest(rt.Digest()),
	}, now, session.DefaultPolicy())
	access, _, _ := issuer.Issue(token.Subject{UserID: userID, SessionID: sessionID, Name: "Alice", AMR: []string{"pwd"}, Roles: []string{"user"}}, now)

	// Append s.Changes() to session.StreamName(sessionID) with NoStream,
	// then answer {access_token: access, refresh_token: rt.Encode(), ...}.
	fmt.Println(len(s.Changes()), s.Changes()[0].EventName(), access != "")

	// A refresh: parse, load the stream it names, rotate.
	presented, _ := token.ParseRefreshToken(rt.Encode())
	next, _ := token.NewRefreshToken(presented.SessionID())
	err := s.Refresh(session.RefreshParams{Presented: session.Digest(presented.Digest()), Next: session.Digest(next.Digest())},
		now.Add(time.Minute), session.DefaultPolicy())
	fmt.Println(err, s.Changes()[1].EventName())
	// Output:
	// 1 session.started.v1 true
	// <nil> session.refreshed.v1
}
