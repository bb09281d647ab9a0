package user_test

import (
	"testing"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events/eventstest"
)

func TestEventsRoundTripUnderTheirOwnNames(t *testing.T) {
	t.Parallel()
	eventstest.RoundTrip(t, user.RegisterEvents, user.AllEvents())
}
