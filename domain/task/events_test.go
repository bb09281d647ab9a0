package task_test

import (
	"testing"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events/eventstest"
)

func TestEventsRoundTripUnderTheirOwnNames(t *testing.T) {
	t.Parallel()
	eventstest.RoundTrip(t, task.RegisterEvents, task.AllEvents())
}
