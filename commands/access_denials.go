package commands

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// DefaultMaxOpenDenialWindows bounds the requesters whose refusals are
// being coalesced at once (a window is about 200 bytes).
const DefaultMaxOpenDenialWindows = 100_000

// Denials records refused requests (a task or file of another user, or a
// missing one: the requester sees 404) on the requester's access stream,
// coalesced per requester over a window (task.DenialWindow): the first
// refusal of a window is appended in full as access.denied.v1; the ones
// after it within the window are only counted, and written as one
// access.denials_counted.v1 when the window has ended, either by Run or
// with the requester's next refusal, whichever comes first. So refused
// reads cannot grow the log faster than two events per requester and
// window, while the trail still shows each burst, its size and reasons.
//
// The counts of open windows live in this process: a crash loses at most
// one window's count per requester (the opening refusal of each is in the
// log already). Run writes every open window out on shutdown. Each
// instance coalesces on its own.
type Denials struct {
	store   eventstore.Store
	window  time.Duration
	maxOpen int
	now     func() time.Time

	mu   sync.Mutex
	open map[uuid.UUID]*openWindow
}

// openWindow is a requester's window and the metadata of its last counted
// request, which its summary carries.
type openWindow struct {
	*task.DenialWindow
	last Meta
}

// NewDenials returns the recorder for store. window 0 appends every
// refusal in full (no coalescing); maxOpen 0 means
// DefaultMaxOpenDenialWindows, past which a requester's refusals are
// appended in full until a window closes. now is the clock of Flush
// (time.Now when nil); Record goes by each refusal's time.
func NewDenials(store eventstore.Store, window time.Duration, maxOpen int, now func() time.Time) (*Denials, error) {
	if store == nil {
		return nil, errors.New("commands: denials need a store")
	}
	if window < 0 || maxOpen < 0 {
		return nil, errors.New("commands: denial window and max open must not be negative")
	}
	if maxOpen == 0 {
		maxOpen = DefaultMaxOpenDenialWindows
	}
	if now == nil {
		now = time.Now
	}
	return &Denials{store: store, window: window, maxOpen: maxOpen, now: now, open: map[uuid.UUID]*openWindow{}}, nil
}

// Record audits the refusal d (at d.DeniedAt) of the request meta. It
// fails only when an append fails: the caller then fails the request (an
// unaudited refusal is not an option), and the refusal is counted into the
// requester's next summary instead.
func (c *Denials) Record(ctx context.Context, meta Meta, d task.AccessDenied) error {
	now := d.DeniedAt
	c.mu.Lock()
	w := c.open[d.UserID]
	if w != nil && w.Open(now) {
		w.Count(d)
		w.last = meta
		c.mu.Unlock()
		return nil
	}
	delete(c.open, d.UserID)
	c.mu.Unlock()

	// The previous window's summary goes first, in the same append: the
	// stream reads in the order things happened.
	var data []eventstore.EventData
	if w != nil {
		if s, ok := w.Summary(); ok {
			sd, err := c.encodeSummary(w, s, now)
			if err != nil {
				return err
			}
			data = append(data, sd...)
		}
	}
	dd, err := EncodeEvents([]events.Event{d}, meta, now)
	if err != nil {
		return err
	}
	data = append(data, dd...)
	opened := task.OpenDenialWindow(d, dd[0].ID, c.window)
	if c.window > 0 {
		c.mu.Lock()
		if len(c.open) < c.maxOpen {
			c.open[d.UserID] = &openWindow{DenialWindow: opened, last: meta}
		}
		c.mu.Unlock()
	}
	if _, err := c.store.Append(ctx, task.AccessStream(d.UserID), eventstore.Any{}, data...); err != nil {
		// Nothing was written: the refusal and the previous window's
		// count go into an ended window, which the next refusal or Run
		// writes out.
		failed := task.OpenDenialWindow(d, uuid.Nil, 0)
		failed.Count(d)
		if w != nil {
			failed.Merge(w.DenialWindow)
		}
		c.putBack(&openWindow{DenialWindow: failed, last: meta}, opened)
		return fmt.Errorf("commands: append access denial of %s: %w", d.UserID, err)
	}
	return nil
}

// putBack keeps the counts of a window that could not be written. When
// the requester's current window is the one opened by the failed append
// (replaced), its opening event was never written: its counts join w,
// which is installed as an ended window (written out at the next chance).
// When a newer window was written meanwhile, w's counts join that one.
func (c *Denials) putBack(w *openWindow, replaced *task.DenialWindow) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch cur := c.open[w.UserID]; {
	case cur == nil:
	case cur.DenialWindow == replaced:
		cur.OpenedBy = uuid.Nil
		w.Merge(cur.DenialWindow)
		w.last = cur.last
	default:
		cur.Merge(w.DenialWindow)
		return
	}
	w.End = w.Start
	c.open[w.UserID] = w
}

// encodeSummary is a window's DenialsCounted with the metadata of its last
// counted request, caused by the refusal that opened it.
func (c *Denials) encodeSummary(w *openWindow, s task.DenialsCounted, now time.Time) ([]eventstore.EventData, error) {
	meta := w.last
	if w.OpenedBy != uuid.Nil {
		meta.CausationID = w.OpenedBy.String()
	}
	return EncodeEvents([]events.Event{s}, meta, now)
}

// Flush writes out the windows that have ended (every open one when all),
// one append per requester. A window that cannot be written is kept for
// the next flush; the errors are joined.
func (c *Denials) Flush(ctx context.Context, all bool) error {
	now := c.now()
	var due []*openWindow
	c.mu.Lock()
	for id, w := range c.open {
		if all || !w.Open(now) {
			delete(c.open, id)
			if w.Counted() > 0 {
				due = append(due, w)
			}
		}
	}
	c.mu.Unlock()
	var errs []error
	for _, w := range due {
		s, _ := w.Summary()
		data, err := c.encodeSummary(w, s, now)
		if err == nil {
			_, err = c.store.Append(ctx, task.AccessStream(w.UserID), eventstore.Any{}, data...)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("commands: append access denials of %s: %w", w.UserID, err))
			c.putBack(w, nil)
		}
	}
	return errors.Join(errs...)
}

// Run flushes ended windows every half window until ctx is done, then every
// open window (bounded by ten seconds), so that a shutdown loses no count.
// It returns the last flush's error.
func (c *Denials) Run(ctx context.Context) error {
	if c.window <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(max(c.window/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			return c.Flush(fctx, true)
		case <-t.C:
			_ = c.Flush(ctx, false) // kept and retried at the next tick
		}
	}
}
