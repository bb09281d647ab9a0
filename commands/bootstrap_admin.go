package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// BootstrapAdmin applies AUTHLEDGER_BOOTSTRAP_ADMIN: the admin role for
// the user of an address, once per user over the deployment's life,
// however many instances start and restart with the setting.
type BootstrapAdmin struct {
	Find  *UserByEmail
	Grant *GrantRoleHandler
	Store eventstore.Store
	Now   func() time.Time
}

// ErrBootstrapPending: no user has the address yet; Apply applies once
// one registers.
var ErrBootstrapPending = errors.New("commands: the bootstrap admin has not registered yet")

// Apply grants the role and records it (access.BootstrapAdminApplied on
// the user's bootstrap stream, appended with NoStream). A stream already
// there means it was applied: nothing is granted again, so an admin who
// revoked the role keeps it revoked. It returns whether this call
// granted, or ErrBootstrapPending.
//
// The grant comes before the record: a crash between them grants again
// at the next start (a no-op while the role is held), rather than record
// a grant never made.
func (b *BootstrapAdmin) Apply(ctx context.Context, email string) (bool, error) {
	id, err := b.Find.Find(ctx, email)
	if errors.Is(err, ErrUserNotFound) {
		return false, ErrBootstrapPending
	}
	if err != nil {
		return false, err
	}
	stream := access.BootstrapStreamPrefix + id.String()
	_, err = b.Store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{Limit: 1})
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, eventstore.ErrStreamNotFound):
		return false, fmt.Errorf("commands: read %s: %w", stream, err)
	}
	meta := Meta{CorrelationID: "bootstrap-admin", Actor: events.Actor{Kind: events.ActorSystem, ID: "bootstrap-admin"}}
	if _, err := b.Grant.Handle(ctx, GrantRole{UserID: id, Role: access.RoleAdmin, Meta: meta}); err != nil {
		return false, err
	}
	data, err := EncodeEvents([]events.Event{access.BootstrapAdminApplied{UserID: id, AppliedAt: b.Now().UTC()}}, meta, b.Now())
	if err != nil {
		return false, err
	}
	if _, err := b.Store.Append(ctx, stream, eventstore.NoStream{}, data...); errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		// Another instance recorded it first.
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, nil
}

// WaitAndApply applies, retrying every interval while the user has not
// registered, until it is applied or ctx ends.
func (b *BootstrapAdmin) WaitAndApply(ctx context.Context, email string, interval time.Duration, applied func(granted bool)) error {
	for {
		granted, err := b.Apply(ctx, email)
		if err == nil {
			applied(granted)
			return nil
		}
		if !errors.Is(err, ErrBootstrapPending) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}
