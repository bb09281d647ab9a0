package pg

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/authledger/authledger/eventstore"
)

// maxPendingBackoff caps the re-poll delay while committed events wait
// behind a running transaction. Such waits are normally a few milliseconds
// (another append committing), so the first re-polls come fast.
const maxPendingBackoff = 25 * time.Millisecond

// Subscribe implements eventstore.Store. It reads pages of BatchSize below
// the xmin horizon until caught up, then waits for a wake-up: an append
// through this Store, a NOTIFY from another process, the poll interval, or
// (when committed events wait behind a running transaction) a short backoff.
// Filters run in SQL; when a page skipped filtered-out events,
// opts.OnCheckpoint receives the position read up to.
func (s *Store) Subscribe(ctx context.Context, opts eventstore.SubscribeOptions, handle eventstore.Handler) error {
	s.startListener()
	cp := opts.After
	ticker := time.NewTicker(s.cfg.PollInterval)
	defer ticker.Stop()
	var backoff time.Duration
	var retry *time.Timer
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		wake := s.wake.wait() // before reading, so no wake-up is missed
		p, err := readPage(ctx, s.pool, cp, s.cfg.BatchSize, opts.Filter, true, 0)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("pg: subscribe: %w", err)
		}
		for _, e := range p.events {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := handle(ctx, e); err != nil {
				return err
			}
			cp = e.Position
		}
		if len(p.events) == s.cfg.BatchSize {
			continue
		}
		if !opts.Filter.IsEmpty() && p.scanned.Compare(cp) > 0 {
			cp = p.scanned
			if opts.OnCheckpoint != nil {
				if err := opts.OnCheckpoint(ctx, cp); err != nil {
					return err
				}
			}
		}
		var retryC <-chan time.Time
		if p.pending {
			backoff = min(max(2*backoff, time.Millisecond), maxPendingBackoff)
			if retry == nil {
				retry = time.NewTimer(backoff)
			} else {
				retry.Reset(backoff)
			}
			retryC = retry.C
		} else {
			backoff = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-ticker.C:
		case <-retryC:
		}
	}
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
