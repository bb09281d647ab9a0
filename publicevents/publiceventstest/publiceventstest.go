// Package publiceventstest produces every published event type through
// the real commands against a real event store, for the schema tests and
// the stream's tests: what a consumer receives is what the server writes.
package publiceventstest

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/test/identitytest"
)

// Personal holds the personal data and secrets the produced events were
// made with: none of it may reach a published event.
type Personal struct {
	Email, DisplayName, Password, ClientIP, UserAgent, OCRText, FileName, FileSHA256 string
}

// Strings lists them.
func (p Personal) Strings() []string {
	return []string{p.Email, p.DisplayName, p.Password, p.ClientIP, p.UserAgent, p.OCRText, p.FileName, p.FileSHA256}
}

// Produce runs, against store (pool: its migrated database), one user's
// registration, logins (one refused), a refresh token's reuse, a logout,
// role and password changes, and tasks that complete, fail for good, fail
// and are retried, are cancelled, deleted and expired: every published
// type at least once. The role and password changes go through the user
// repository's load-decide-append (commands.Repository.Update), since no
// command of the API changes them yet.
func Produce(t testing.TB, ctx context.Context, store eventstore.Store, pool *pgxpool.Pool) Personal {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	id := uuid.NewString()[:8]
	p := Personal{
		Email: "ada-" + id + "@example.com", DisplayName: "Ada Lovelace " + id, Password: "a long passphrase " + id,
		ClientIP: "203.0.113.77", UserAgent: "PersonalAgent/" + id, OCRText: "the secret recipe " + id,
		FileName: "medical-" + id + ".png", FileSHA256: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
	}
	meta := commands.Meta{ClientIP: p.ClientIP, UserAgent: p.UserAgent, Actor: events.Actor{Kind: events.ActorAnonymous}}
	s := identitytest.New(t, ctx, store, pool)
	reg, err := s.Register.Handle(ctx, commands.Register{Email: p.Email, Password: p.Password, DisplayName: p.DisplayName, Meta: meta})
	must(err)
	meta.Actor = events.Actor{Kind: events.ActorUser, ID: reg.UserID.String()}
	_, err = s.Login.Handle(ctx, commands.Login{Email: p.Email, Password: "not the password", Meta: meta})
	if err == nil {
		t.Fatal("a wrong password logged in")
	}
	first, err := s.Login.Handle(ctx, commands.Login{Email: p.Email, Password: p.Password, Meta: meta})
	must(err)
	if _, err := s.Refresh.Handle(ctx, commands.Refresh{RefreshToken: first.RefreshToken, Meta: meta}); err != nil {
		t.Fatal(err)
	}
	// The rotated token again: reuse detected, the session revoked.
	if _, err := s.Refresh.Handle(ctx, commands.Refresh{RefreshToken: first.RefreshToken, Meta: meta}); err == nil {
		t.Fatal("a rotated refresh token was accepted")
	}
	second, err := s.Login.Handle(ctx, commands.Login{Email: p.Email, Password: p.Password, Meta: meta})
	must(err)
	_, err = s.Revoke.Handle(ctx, commands.RevokeSession{SessionID: second.SessionID, UserID: reg.UserID, Reason: session.ReasonLogout, Meta: meta})
	must(err)
	stream := user.StreamName(reg.UserID)
	_, err = s.Users.Update(ctx, stream, meta, func(u *user.User) error { return u.GrantRole("auditor", time.Now()) })
	must(err)
	_, err = s.Users.Update(ctx, stream, meta, func(u *user.User) error { return u.RevokeRole("auditor", time.Now()) })
	must(err)
	_, err = s.Users.Update(ctx, stream, meta, func(u *user.User) error {
		return u.ChangePassword("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA", time.Now())
	})
	must(err)

	treg := events.NewRegistry()
	must(task.RegisterEvents(treg))
	th, err := commands.NewTaskHandlers(store, treg, commands.DefaultTaskConfig())
	must(err)
	owner := reg.UserID
	create := func(maxAttempts int) uuid.UUID {
		t.Helper()
		tid := uuid.New()
		_, err := th.Create.Handle(ctx, commands.CreateTask{TaskID: tid, OwnerID: owner, MaxAttempts: maxAttempts, Meta: meta,
			Files: []task.File{{ID: uuid.New(), Name: p.FileName, ContentType: "image/png", Size: 1234, SHA256: p.FileSHA256}}})
		must(err)
		return tid
	}
	claim := func(tid uuid.UUID) {
		t.Helper()
		_, err := th.Claim.Handle(ctx, commands.ClaimTask{TaskID: tid, WorkerID: "w1", Meta: meta})
		must(err)
	}
	done := create(1)
	claim(done)
	_, err = th.Complete.Handle(ctx, commands.CompleteTask{TaskID: done, WorkerID: "w1", Result: p.OCRText, Meta: meta})
	must(err)
	failed := create(1)
	claim(failed)
	_, err = th.Fail.Handle(ctx, commands.FailTask{TaskID: failed, WorkerID: "w1", Error: "tesseract could not read " + p.FileName, Meta: meta})
	must(err)
	again := create(2)
	claim(again)
	_, err = th.Fail.Handle(ctx, commands.FailTask{TaskID: again, WorkerID: "w1", Error: "busy", Meta: meta})
	must(err)
	_, err = th.Retry.Handle(ctx, commands.RetryTask{TaskID: again, UserID: owner, Meta: meta})
	must(err)
	_, err = th.Cancel.Handle(ctx, commands.CancelTask{TaskID: create(1), UserID: owner, Meta: meta})
	must(err)
	_, err = th.Delete.Handle(ctx, commands.DeleteTask{TaskID: create(1), UserID: owner, Meta: meta})
	must(err)
	_, err = th.Expire.Handle(ctx, commands.ExpireTask{TaskID: create(1), CreatedBefore: time.Now().Add(time.Hour), Meta: meta})
	must(err)
	// Another user, erased (user.erased.v1; the erasure's other steps,
	// the data key and the files, are not the log's).
	other, err := s.Register.Handle(ctx, commands.Register{Email: "other-" + p.Email, Password: p.Password, DisplayName: "Other", Meta: meta})
	must(err)
	_, err = s.Users.Update(ctx, user.StreamName(other.UserID), meta, func(u *user.User) error { return u.Erase(other.UserID, false, time.Now()) })
	must(err)
	return p
}
