package commands

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/mailtoken"
	"github.com/authledger/authledger/domain/user"
)

// newMailToken chooses a token id for userID and returns it with the
// digest of its token, what the log holds (the mail's token is derived
// again from the id by the outgoing-message reactor).
func newMailToken(m *mailtoken.Minter, p mailtoken.Purpose, userID uuid.UUID) (uuid.UUID, user.Digest, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, user.Digest{}, fmt.Errorf("commands: token id: %w", err)
	}
	return id, user.Digest(m.Mint(p, userID, id).Digest()), nil
}

// loadByMailToken decodes a mailed token (a malformed one is
// user.ErrInvalidToken, like any other bad token) and loads the user it
// names, for the aggregate to judge the token by its digest.
func loadByMailToken(ctx context.Context, users *Repository[*user.User], raw string) (mailtoken.Token, user.Digest, *user.User, error) {
	t, err := mailtoken.Parse(raw)
	if err != nil {
		return mailtoken.Token{}, user.Digest{}, nil, user.ErrInvalidToken
	}
	u, err := users.Load(ctx, user.StreamName(t.UserID))
	if err != nil {
		return mailtoken.Token{}, user.Digest{}, nil, err
	}
	return t, user.Digest(t.Digest()), u, nil
}

// registeredHolder finds the registered user holding email (false when
// none), reading the same streams whether or not there is one, so that an
// anonymous request for an unknown address costs what a known one does.
func registeredHolder(ctx context.Context, res *Repository[*user.EmailReservation], users *Repository[*user.User], key []byte, email string) (*user.User, bool, error) {
	holder, held, err := emailHolder(ctx, res, key, email)
	if err != nil {
		return nil, false, err
	}
	stream := decoyStream
	if held {
		stream = user.StreamName(holder)
	}
	u, err := users.Load(ctx, stream)
	if err != nil {
		return nil, false, err
	}
	return u, held && u.Registered(), nil
}

// MailedLinks is what the anonymous "mail me a link" commands share: they
// find the address's registered holder (reading the same streams for an
// unknown address) and record a new token on its stream.
//
// The record is appended off the response path, as a refused login's is
// (loginFailures): the answer comes after the same reads for a registered
// and an unknown address, so that its timing does not tell them apart
// (measured by the account section of authledger-bench). An append that
// fails is logged and lost; the user asks again.
type MailedLinks struct {
	Users          *Repository[*user.User]
	Reservations   *Repository[*user.EmailReservation]
	ReservationKey []byte
	Minter         *mailtoken.Minter
	Now            func() time.Time
	// Logger receives the appends that failed (discarded when nil).
	Logger *slog.Logger

	pending sync.WaitGroup
}

// mailedLinkAppendTimeout bounds one background append.
const mailedLinkAppendTimeout = 10 * time.Second

// Drain waits until the requests answered are in the log (or ctx is
// done). Call it at shutdown, before the store closes.
func (m *MailedLinks) Drain(ctx context.Context) {
	done := make(chan struct{})
	go func() { m.pending.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// request records a token of purpose for the holder of email when wanted
// says so; for nobody, or an unwanted holder, it records nothing.
func (m *MailedLinks) request(ctx context.Context, email string, meta Meta, p mailtoken.Purpose, wanted func(*user.User) bool,
	record func(u *user.User, id uuid.UUID, d user.Digest, now time.Time) error) error {
	now := nowOf(m.Now)
	u, ok, err := registeredHolder(ctx, m.Reservations, m.Users, m.ReservationKey, email)
	if err != nil || !ok || !wanted(u) {
		return err
	}
	id, digest, err := newMailToken(m.Minter, p, u.ID())
	if err != nil {
		return err
	}
	m.pending.Add(1)
	go func() {
		defer m.pending.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mailedLinkAppendTimeout)
		defer cancel()
		_, err := m.Users.Update(ctx, user.StreamName(u.ID()), meta, func(u *user.User) error { return record(u, id, digest, now) })
		if err != nil && m.Logger != nil {
			m.Logger.Warn("a requested link was not recorded; the user must ask again", slog.String("user_id", u.ID().String()),
				slog.String("purpose", string(p)), slog.String("error", err.Error()))
		}
	}()
	return nil
}

func nowOf(clock func() time.Time) time.Time {
	if clock != nil {
		return clock()
	}
	return time.Now()
}
