// Package connlimit caps the connections an http.Server holds open, and
// keeps it answering while the cap is reached (docs/adr/0008).
//
// A listener that blocks Accept at the cap (x/net/netutil.LimitListener)
// lets whoever holds the connections decide who is served: a thousand
// slow or idle clients leave a health check or a login waiting in the
// kernel's backlog. Here a connection arriving at the cap is accepted and
// makes room by closing another, chosen in this order:
//
//  1. an idle keep-alive connection, the longest idle first: its client
//     loses nothing but a reconnect;
//  2. a connection still sending its request (headers, or a body the
//     handler is reading), the one that has sent nothing for longest
//     first: a slow or stalled client, never a busy one;
//
// Connections whose request has fully arrived (the handler computes or
// writes the answer) are never closed; when every connection is one, the
// new connection is refused (closed at once): the server is at work, and
// the write timeouts bound how long.
//
// Wire it in three places: Listener around the listener, ConnState as the
// server's ConnState hook, Handler around the server's handler (it tells
// a connection reading its body from one answering).
package connlimit

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limiter holds the open connections of one server. Its zero value is not
// usable: call New.
type Limiter struct {
	max int
	now func() time.Time

	mu    sync.Mutex
	conns map[*conn]struct{}

	evicted, refused atomic.Uint64
}

// New returns a Limiter allowing max open connections (at least 1).
func New(max int) (*Limiter, error) {
	if max < 1 {
		return nil, errors.New("connlimit: max must be at least 1")
	}
	return &Limiter{max: max, now: time.Now, conns: make(map[*conn]struct{}, max)}, nil
}

// Stats are counters since New.
type Stats struct {
	// Open is the connections open now.
	Open int
	// Evicted counts connections closed to make room; Refused the new
	// ones closed because nothing could be.
	Evicted, Refused uint64
}

// Stats reports the current counts.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	n := len(l.conns)
	l.mu.Unlock()
	return Stats{Open: n, Evicted: l.evicted.Load(), Refused: l.refused.Load()}
}

// Listener wraps ln: each accepted connection is counted until it closes,
// and one past the cap first makes room (see the package comment).
func (l *Limiter) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, l: l} }

type listener struct {
	net.Listener
	l *Limiter
}

// Accept returns the next connection that got a place; refused ones are
// closed here and never reach the server.
func (ln *listener) Accept() (net.Conn, error) {
	for {
		nc, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c := ln.l.admit(nc); c != nil {
			return c, nil
		}
		_ = nc.Close()
	}
}

// phase is what a connection is doing, as far as eviction cares.
type phase int32

const (
	// receiving: the request has not fully arrived (the headers, or a
	// body the handler reads). New connections start here.
	receiving phase = iota
	// answering: the request is in; the handler computes or writes.
	answering
	// idle: a keep-alive connection between requests.
	idle
	// gone: hijacked or closed; no longer the server's to evict.
	gone
)

// conn is an accepted connection with what eviction needs to know.
type conn struct {
	net.Conn
	l *Limiter
	// lastRead is when a read last returned bytes (UnixNano); since is
	// when the phase last changed.
	lastRead atomic.Int64
	since    atomic.Int64
	phase    atomic.Int32
	once     sync.Once
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.lastRead.Store(c.l.now().UnixNano())
	}
	return n, err
}

// ReadFrom hands r to the connection's own ReadFrom: net/http sends a
// file with the kernel's sendfile only when its connection has one, and a
// wrapper without it would copy every download through user space.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// Close closes the connection and frees its place.
func (c *conn) Close() error {
	c.release()
	return c.Conn.Close()
}

func (c *conn) release() {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
}

func (c *conn) set(p phase) {
	c.phase.Store(int32(p))
	c.since.Store(c.l.now().UnixNano())
}

// admit counts nc, making room past the cap; nil means refused.
func (l *Limiter) admit(nc net.Conn) *conn {
	c := &conn{Conn: nc, l: l}
	now := l.now().UnixNano()
	c.lastRead.Store(now)
	c.since.Store(now)
	l.mu.Lock()
	var victim *conn
	if len(l.conns) >= l.max {
		victim = l.victimLocked()
		if victim == nil {
			l.mu.Unlock()
			l.refused.Add(1)
			return nil
		}
		// Its place is the new connection's from now on, whether or not
		// the server has noticed the close yet.
		victim.once.Do(func() { delete(l.conns, victim) })
	}
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	if victim != nil {
		l.evicted.Add(1)
		// The server's goroutine for it sees its read or write fail and
		// lets go; Close on the raw connection does not wait for that.
		_ = victim.Conn.Close()
	}
	return c
}

// victimLocked picks the connection to close: the longest idle one, or
// else the receiving one silent for longest. O(open connections), paid
// only at the cap.
func (l *Limiter) victimLocked() *conn {
	var bestIdle, bestRecv *conn
	var idleSince, recvSince int64
	for c := range l.conns {
		switch phase(c.phase.Load()) {
		case idle:
			if s := c.since.Load(); bestIdle == nil || s < idleSince {
				bestIdle, idleSince = c, s
			}
		case receiving:
			if s := c.lastRead.Load(); bestRecv == nil || s < recvSince {
				bestRecv, recvSince = c, s
			}
		case answering, gone:
		}
	}
	if bestIdle != nil {
		return bestIdle
	}
	return bestRecv
}

// ConnState is the server's ConnState hook: it follows each connection
// between receiving, answering and idle.
func (l *Limiter) ConnState(nc net.Conn, s http.ConnState) {
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	switch s {
	case http.StateNew:
		c.set(receiving)
	case http.StateActive:
		// The headers are in. Handler says whether a body is still to
		// come; until it runs, the request counts as received.
		c.set(answering)
	case http.StateIdle:
		c.set(idle)
	case http.StateHijacked:
		c.set(gone)
	case http.StateClosed:
		c.set(gone)
		c.release()
	}
}

type ctxKey struct{}

// ConnContext is the server's ConnContext hook: it lets Handler find the
// connection of a request.
func (l *Limiter) ConnContext(ctx context.Context, nc net.Conn) context.Context {
	if c, ok := nc.(*conn); ok {
		return context.WithValue(ctx, ctxKey{}, c)
	}
	return ctx
}

// Handler wraps h so that a request whose body has not ended counts as
// receiving (evictable when slow), and as answering once its body ends.
// A body the handler leaves unread keeps it receiving: net/http reads
// what is left after the handler returns, for as long as the client
// takes, before the connection goes idle.
func (l *Limiter) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := r.Context().Value(ctxKey{}).(*conn)
		if ok && r.Body != nil && r.Body != http.NoBody {
			c.set(receiving)
			r.Body = &body{ReadCloser: r.Body, c: c}
		}
		h.ServeHTTP(w, r)
	})
}

// body marks its connection answering once the request body ends (or
// fails: past a limit, the rest is never read).
type body struct {
	io.ReadCloser
	c *conn
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.c.set(answering)
	}
	return n, err
}

// Register exports the counts on reg: authledger_http_connections_open,
// authledger_http_connections_evicted_total and
// authledger_http_connections_refused_total.
func (l *Limiter) Register(reg prometheus.Registerer) error {
	return errors.Join(
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authledger_http_connections_open",
			Help: "Client connections open (AUTHLEDGER_MAX_CONNECTIONS at most).",
		}, func() float64 { return float64(l.Stats().Open) })),
		reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authledger_http_connections_evicted_total",
			Help: "Idle or slow connections closed to make room for a new one at the connection cap.",
		}, func() float64 { return float64(l.evicted.Load()) })),
		reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authledger_http_connections_refused_total",
			Help: "New connections closed at the connection cap because every open one was being answered.",
		}, func() float64 { return float64(l.refused.Load()) })),
	)
}
