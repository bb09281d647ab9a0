package user

import (
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/events"
)

// EmailReservation is the aggregate of one reservation stream
// (EmailReservationStream): which user, if any, holds an address. It is the
// one place the "unique email" rule lives, since the log has no
// multi-stream transactions.
type EmailReservation struct {
	holder  uuid.UUID
	held    bool
	version int
	changes []events.Event
}

// ReservationFromHistory folds a reservation stream's events, oldest first.
// An empty history is a free address.
func ReservationFromHistory(history []events.Event) (*EmailReservation, error) {
	r := &EmailReservation{}
	for _, e := range history {
		if err := r.apply(e); err != nil {
			return nil, err
		}
		r.version++
	}
	return r, nil
}

// Holder returns the user holding the address, if any.
func (r *EmailReservation) Holder() (uuid.UUID, bool) { return r.holder, r.held }

// Version is the number of events folded; append Changes with NoStream when
// it is 0, else at revision Version()-1.
func (r *EmailReservation) Version() int { return r.version }

// Changes are the events to append.
func (r *EmailReservation) Changes() []events.Event { return slices.Clone(r.changes) }

// Reserve claims the address for userID. Held by the same user (a retried
// registration), it records nothing and succeeds, so the retry goes on to
// write the user stream; held by another, ErrEmailTaken.
func (r *EmailReservation) Reserve(userID uuid.UUID, now time.Time) error {
	if userID == uuid.Nil {
		return invalid("user_id", "is required")
	}
	if r.held {
		if r.holder == userID {
			return nil
		}
		return ErrEmailTaken
	}
	r.record(EmailReserved{UserID: userID, ReservedAt: now.UTC()})
	return nil
}

// Release frees the address held by userID. Releasing a free address, or
// one held by someone else, is ErrNotReservedBy.
func (r *EmailReservation) Release(userID uuid.UUID, now time.Time) error {
	if !r.held || r.holder != userID {
		return ErrNotReservedBy
	}
	r.record(EmailReleased{UserID: userID, ReleasedAt: now.UTC()})
	return nil
}

func (r *EmailReservation) record(e events.Event) {
	if err := r.apply(e); err != nil {
		panic(err) // only this aggregate's own, valid events reach here
	}
	r.changes = append(r.changes, e)
}

func (r *EmailReservation) apply(e events.Event) error {
	switch e := e.(type) {
	case EmailReserved:
		r.holder, r.held = e.UserID, true
	case EmailReleased:
		r.holder, r.held = uuid.Nil, false
	default:
		return fmt.Errorf("user: unexpected event %T on an email reservation stream", e)
	}
	return nil
}
