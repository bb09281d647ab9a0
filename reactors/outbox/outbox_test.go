package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/reactors/outbox"
)

// Each event that calls for a message makes one outbox row, however often
// the log is delivered to the policy (a replay from the start inserts
// nothing); events too old to be of use make none.
func TestOneRowPerEventIDAcrossReplays(t *testing.T) {
	t.Parallel()
	env := projtest.New(t)
	ctx := context.Background()
	now := time.Now().UTC()
	uid := uuid.New()
	stream := user.StreamName(uid)
	appendEv := func(data any, typ string) eventstore.Position {
		res, err := env.Store.Append(ctx, stream, eventstore.Any{}, projtest.Event(typ, data, uid.String()))
		if err != nil {
			t.Fatal(err)
		}
		return res.Position
	}
	appendEv(user.EmailVerificationRequested{UserID: uid, TokenID: uuid.New(), Email: "a@example.com", RequestedAt: now, ExpiresAt: now.Add(user.VerificationTTL)}, user.EventEmailVerificationRequested)
	appendEv(user.PasswordResetRequested{UserID: uid, TokenID: uuid.New(), RequestedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-30 * time.Minute)}, user.EventPasswordResetRequested) // expired
	appendEv(user.RegistrationAttempted{UserID: uid, AttemptedAt: now.Add(-48 * time.Hour)}, user.EventRegistrationAttempted)                                                          // too old
	appendEv(user.PasswordChanged{UserID: uid, PasswordHash: "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA", ChangedAt: now}, user.EventPasswordChanged)                                   // no reason: a legacy change
	last := appendEv(user.PasswordChanged{UserID: uid, PasswordHash: "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA", ChangedAt: now, Reason: user.PasswordReasonReset}, user.EventPasswordChanged)

	count := func() map[string]int {
		rows, err := env.Admin.Query(ctx, `SELECT kind, count(*) FROM `+outbox.Table+` GROUP BY kind`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int{}
		for rows.Next() {
			var k string
			var n int
			if err := rows.Scan(&k, &n); err != nil {
				t.Fatal(err)
			}
			out[k] = n
		}
		return out
	}
	stop := env.Run(t, outbox.New(nil, 0))
	env.WaitCaughtUp(t, ctx, last, outbox.Name)
	stop()
	want := map[string]int{outbox.KindVerifyEmail: 1, outbox.KindPasswordChanged: 1}
	if got := count(); len(got) != len(want) || got[outbox.KindVerifyEmail] != 1 || got[outbox.KindPasswordChanged] != 1 {
		t.Fatalf("rows %v, want %v", got, want)
	}
	// Replay everything: the checkpoint back at the start of the log.
	if _, err := env.Admin.Exec(ctx, `UPDATE projection_checkpoints SET position = DEFAULT, events_applied = 0 WHERE name = $1`, outbox.Name); err != nil {
		t.Fatal(err)
	}
	env.Run(t, outbox.New(nil, 0))
	env.WaitCaughtUp(t, ctx, last, outbox.Name)
	var applied int64
	if err := env.Admin.QueryRow(ctx, `SELECT events_applied FROM projection_checkpoints WHERE name = $1`, outbox.Name).Scan(&applied); err != nil || applied < 5 {
		t.Fatalf("the replay applied %d events (%v)", applied, err)
	}
	if got := count(); got[outbox.KindVerifyEmail] != 1 || got[outbox.KindPasswordChanged] != 1 || len(got) != 2 {
		t.Fatalf("after a replay: %v", got)
	}
	s, err := outbox.Summarize(ctx, env.Admin)
	if err != nil || s.Pending != 2 || s.Dead != 0 {
		t.Fatalf("summary %+v %v", s, err)
	}
}
