package pg

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authledger/authledger/eventstore"
)

// A tail is a Store's one reader of the end of the log, shared by every
// subscription that has caught up. Without it each live subscription read
// $all itself whenever an append woke it, so a process with seven
// subscriptions (four projections, the revocation set, the session-limit
// reactor, a worker) ran seven reads per append, most of them to learn that
// nothing matched their filter. The tail reads each new stretch of the log
// once, unfiltered, and publishes it as a segment; subscriptions filter
// segments in Go. A subscription that is behind reads on its own until it
// reaches the segments the tail still holds.
type tail struct {
	s *Store
	// keep and maxLag bound memory: the tail holds at most keep events
	// (plus one segment) for subscriptions that are about to attach, and a
	// subscription more than maxLag events behind the newest segment lets
	// go of the chain and reads on its own.
	keep, maxLag uint64

	mu             sync.Mutex
	oldest, latest *segment // the window held for attaching; nil until started
	published      atomic.Uint64
}

// A segment is one read of the tail: every event after from up to and
// including to, in log order (to may pass the last event: the read saw the
// log up to there). Segments chain: the next one starts at this one's to.
type segment struct {
	from, to eventstore.Position
	events   []eventstore.RecordedEvent
	// err is a failed read: from == to, no events.
	err error
	// seq numbers segments; total counts the events published up to and
	// including this one.
	seq, total uint64

	next  *segment      // set before ready is closed
	ready chan struct{} // closed once next is set
}

const (
	defaultTailKeep   = 4096
	defaultTailMaxLag = 16384
	// blockedFor is how long one transaction may hold the tail's snapshot
	// horizon back before the tail looks past other databases' transactions
	// (see run). This log's own appends commit well within it.
	blockedFor = 10 * time.Millisecond
)

// errFellBehind ends following the tail: the subscription reads on its own.
var errFellBehind = errors.New("pg: subscription fell behind the tail")

func newTail(s *Store) *tail {
	return &tail{s: s, keep: defaultTailKeep, maxLag: defaultTailMaxLag}
}

// attach returns the segment a subscription continues from when it has
// read the log up to covered: a held segment with from <= covered <= to,
// or the newest one when covered is past it. It returns nil when covered
// is older than every held segment (read on). The first call starts the
// tail's reader at covered. since is the newest segment's seq: errors up
// to it are older than the subscription's own read and not its concern.
func (t *tail) attach(covered eventstore.Position) (seg *segment, since uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.s.bg.Err() != nil {
		return nil, 0
	}
	if t.latest == nil {
		t.latest = &segment{from: covered, to: covered, ready: make(chan struct{})}
		t.oldest = t.latest
		t.s.wg.Add(1)
		go t.run(covered)
		return t.latest, 0
	}
	since = t.latest.seq
	if covered.Compare(t.latest.to) >= 0 {
		return t.latest, since
	}
	if covered.Compare(t.oldest.from) < 0 {
		return nil, 0
	}
	for seg := t.oldest; ; seg = seg.next {
		if covered.Compare(seg.to) <= 0 {
			return seg, since
		}
	}
}

// behind reports whether seg is so far behind the newest segment that its
// follower should let go of the chain.
func (t *tail) behind(seg *segment) bool {
	return t.published.Load()-seg.total > t.maxLag
}

// publish appends a segment after the newest one and wakes its followers.
func (t *tail) publish(events []eventstore.RecordedEvent, to eventstore.Position, err error) {
	t.mu.Lock()
	prev := t.latest
	seg := &segment{from: prev.to, to: to, events: events, err: err,
		seq: prev.seq + 1, total: prev.total + uint64(len(events)), ready: make(chan struct{})}
	prev.next = seg
	t.latest = seg
	for t.oldest != seg && seg.total-t.oldest.total > t.keep {
		t.oldest = t.oldest.next
	}
	t.published.Store(seg.total)
	t.mu.Unlock()
	close(prev.ready)
}

// run is the tail's reader. It reads after the newest segment whenever the
// Store is woken (an append of this process, a NOTIFY of another), on the
// poll interval, and with a short backoff while committed events wait
// behind a running transaction, but not twice within TailInterval unless
// the last read filled a page; each read that moves the tail forward
// becomes a segment. A failed read becomes a segment carrying the error,
// which ends the subscriptions that were following the tail when it was
// published (they resubscribe as they would after a failed read of their
// own), and is retried with backoff.
func (t *tail) run(from eventstore.Position) {
	s := t.s
	defer s.wg.Done()
	ticker := time.NewTicker(s.cfg.PollInterval)
	defer ticker.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var pendingBackoff, errBackoff time.Duration
	// The tail reads below the snapshot's xmin, which costs nothing. When
	// the same transaction has held that horizon back for blockedFor, it
	// may be one of another database (a long one would hold this log's
	// subscribers back as long as it runs), so the tail reads again at once
	// below the precise horizon, which leaves other databases' transactions
	// out. If that one does not pass it either, the transaction is this
	// database's (a slow read-model write, say) and the tail waits for it
	// like for any other; if it does, every read that finds it still there
	// is followed by a precise one.
	var blockedBy, ours int64
	var blockedSince, lastRead time.Time
	hk := snapshotHorizon
	again := false // read next without waiting for TailInterval
	for {
		if wait := s.cfg.TailInterval - time.Since(lastRead); !again && wait > 0 && !sleep(s.bg, wait) {
			return
		}
		lastRead = time.Now()
		wake := s.wake.wait() // before reading, so no wake-up is missed
		p, err := readPage(s.bg, s.allPool, from, s.cfg.BatchSize, eventstore.Filter{}, true, 0, hk)
		if err != nil {
			if s.bg.Err() != nil {
				return
			}
			t.publish(nil, from, err)
			errBackoff = min(max(2*errBackoff, 100*time.Millisecond), 5*time.Second)
			if !sleep(s.bg, errBackoff) {
				return
			}
			continue
		}
		errBackoff = 0
		to := from
		if n := len(p.events); n > 0 {
			to = p.events[n-1].Position
		}
		if p.scanned.Compare(to) > 0 {
			to = p.scanned
		}
		if to.Compare(from) > 0 {
			t.publish(p.events, to, nil)
			from = to
		}
		if hk == preciseHorizon && p.horizon <= blockedBy {
			ours = blockedBy
		}
		if again = len(p.events) == s.cfg.BatchSize; again {
			hk = snapshotHorizon
			continue
		}
		if hk == snapshotHorizon && p.pending && p.horizon != ours {
			if p.horizon != blockedBy {
				blockedBy, blockedSince = p.horizon, time.Now()
			} else if time.Since(blockedSince) >= blockedFor {
				hk, again = preciseHorizon, true
				continue
			}
		}
		hk = snapshotHorizon
		var retryC <-chan time.Time
		if p.pending {
			pendingBackoff = min(max(2*pendingBackoff, time.Millisecond), maxPendingBackoff)
			retry.Reset(pendingBackoff)
			retryC = retry.C
		} else {
			pendingBackoff = 0
		}
		select {
		case <-s.bg.Done():
			return
		case <-wake:
		case <-ticker.C:
		case <-retryC:
		}
		retry.Stop()
	}
}
