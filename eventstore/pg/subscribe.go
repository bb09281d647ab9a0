package pg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/authledger/authledger/eventstore"
)

// maxPendingBackoff caps the re-read delay while committed events wait
// behind a running transaction. Such waits are normally a few milliseconds
// (another append committing), so the first re-reads come fast.
const maxPendingBackoff = 25 * time.Millisecond

// Subscribe implements eventstore.Store. A subscription first reads $all
// on its own, in pages of BatchSize below the xmin horizon with its filter
// in SQL, until it is caught up; it then follows the Store's tail (see
// tail), which reads each new stretch of the log once for every
// subscription of the Store, and filters it in Go. Should it fall far
// behind the tail (a slow handler), it lets go and reads on its own again.
// When the log up to some position held only filtered-out events,
// opts.OnCheckpoint receives that position.
//
// Events delivered from the tail share their Data and Metadata with the
// Store's other subscriptions: handlers must not modify them.
func (s *Store) Subscribe(ctx context.Context, opts eventstore.SubscribeOptions, handle eventstore.Handler) error {
	s.startListener()
	sub := &subscription{s: s, opts: opts, handle: handle, cp: opts.After, covered: opts.After}
	for {
		seg, since, err := sub.catchUp(ctx)
		if err != nil {
			return err
		}
		if err := sub.follow(ctx, seg, since); !errors.Is(err, errFellBehind) {
			return err
		}
	}
}

// subscription is the state of one Subscribe call.
type subscription struct {
	s      *Store
	opts   eventstore.SubscribeOptions
	handle eventstore.Handler
	// cp is the last position delivered or given to OnCheckpoint.
	cp eventstore.Position
	// covered is the position up to which every event was delivered or
	// filtered out (cp <= covered).
	covered eventstore.Position
}

// catchUp reads after covered on its own until a page is not full, then
// returns the tail segment to follow from (and attach's since); while
// covered is older than the tail holds, it reads again.
func (u *subscription) catchUp(ctx context.Context) (*segment, uint64, error) {
	var backoff time.Duration
	for {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		p, err := readPage(ctx, u.s.allPool, u.covered, u.s.cfg.BatchSize, u.opts.Filter, true, 0, preciseHorizon)
		if err != nil {
			if ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
			return nil, 0, fmt.Errorf("pg: subscribe: %w", err)
		}
		for _, e := range p.events {
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
			if err := u.handle(ctx, e); err != nil {
				return nil, 0, err
			}
			u.cp, u.covered = e.Position, e.Position
		}
		if len(p.events) == u.s.cfg.BatchSize {
			continue
		}
		if p.scanned.Compare(u.covered) > 0 {
			u.covered = p.scanned
		}
		if err := u.checkpoint(ctx); err != nil {
			return nil, 0, err
		}
		if p.pending {
			// Committed events wait behind a running transaction: have the
			// tail look (it re-reads with a backoff while they do).
			u.s.wake.fire()
		}
		if seg, since := u.s.tail.attach(u.covered); seg != nil {
			return seg, since, nil
		}
		if u.s.bg.Err() != nil {
			return nil, 0, errStoreClosed
		}
		// The tail has moved on past what it holds since this read.
		if len(p.events) > 0 {
			backoff = 0
		} else if backoff = min(max(2*backoff, time.Millisecond), maxPendingBackoff); !sleep(ctx, backoff) {
			return nil, 0, ctx.Err()
		}
	}
}

// follow delivers the tail's segments from seg on. Errors of segments up to
// since were published before it attached: its own read went past them.
func (u *subscription) follow(ctx context.Context, seg *segment, since uint64) error {
	for {
		if seg.err != nil && seg.seq > since {
			return fmt.Errorf("pg: subscribe: %w", seg.err)
		}
		for _, e := range seg.events {
			if e.Position.Compare(u.covered) <= 0 {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if u.opts.Filter.Matches(e.Stream, e.Type) {
				if err := u.handle(ctx, e); err != nil {
					return err
				}
				u.cp = e.Position
			}
			u.covered = e.Position
		}
		if seg.to.Compare(u.covered) > 0 {
			u.covered = seg.to
		}
		if err := u.checkpoint(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-u.s.bg.Done():
			return errStoreClosed
		case <-seg.ready:
		}
		seg = seg.next
		if u.s.tail.behind(seg) {
			return errFellBehind
		}
	}
}

// checkpoint moves a filtered subscription's checkpoint up to covered and
// tells OnCheckpoint.
func (u *subscription) checkpoint(ctx context.Context) error {
	if u.opts.Filter.IsEmpty() || u.covered.Compare(u.cp) <= 0 {
		return nil
	}
	u.cp = u.covered
	if u.opts.OnCheckpoint != nil {
		return u.opts.OnCheckpoint(ctx, u.cp)
	}
	return nil
}

func (s *Store) startListener() {
	s.listen.Do(func() {
		s.wg.Add(1)
		go s.listener()
	})
}

// listener holds a dedicated connection that LISTENs for appends made by
// other processes, and reconnects with backoff when it loses it. Every
// (re)connection wakes the subscribers, since notifications may have been
// missed meanwhile.
func (s *Store) listener() {
	defer s.wg.Done()
	backoff := 100 * time.Millisecond
	for s.bg.Err() == nil {
		conn, err := pgx.ConnectConfig(s.bg, s.pool.Config().ConnConfig.Copy())
		if err == nil {
			_, err = conn.Exec(s.bg, "LISTEN "+pgx.Identifier{s.cfg.NotifyChannel}.Sanitize())
			if err == nil {
				backoff = 100 * time.Millisecond
				s.wake.fire()
				for {
					var n *pgconn.Notification
					if n, err = conn.WaitForNotification(s.bg); err != nil {
						break
					}
					// Our own appends woke our subscribers already.
					if n.Payload != s.id {
						s.wake.fire()
					}
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = conn.Close(ctx)
			cancel()
		}
		if !sleep(s.bg, backoff) {
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// notifier sends at most one NOTIFY per NotifyInterval after appends, so
// that writers never take the notification queue's lock themselves. Errors
// are ignored: subscribers of other processes then wake on their poll.
func (s *Store) notifier() {
	defer s.wg.Done()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-s.kick:
		}
		_, _ = s.pool.Exec(s.bg, "SELECT pg_notify($1, $2)", s.cfg.NotifyChannel, s.id)
		if !sleep(s.bg, s.cfg.NotifyInterval) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
