// Package testclock is a clock that tests move by hand, so that leases,
// backoffs and "at most once a minute" are checked without waiting.
package testclock

import (
	"sync"
	"time"
)

// Clock is safe for concurrent use; its Now fits every Now func() time.Time
// of a Config.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock showing the current time (in UTC, to the
// microsecond, as PostgreSQL keeps it, so that times read back compare
// equal).
func New() *Clock { return &Clock{t: time.Now().UTC().Truncate(time.Microsecond)} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
