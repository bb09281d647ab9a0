// Package jetstream is the analytics stream's NATS JetStream adapter: a
// stream.Publisher over Watermill's NATS publisher (watermill-nats/v2,
// JetStream enabled) and the subscriber behind `authledger stream tail`.
//
// Each public event is published to the subject SubjectPrefix + "." +
// its internal name ("authledger.session.started.v1"), in the stream
// Stream (created when missing, to hold SubjectPrefix + ".>"), with
// the event id as Nats-Msg-Id: JetStream drops a message whose id it
// stored within DuplicateWindow, so a publisher that republishes after a
// crash adds nothing. Publishes are synchronous (each waits for
// JetStream's acknowledgement before the next), which keeps the stream in
// log order.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/authledger/authledger/publicevents"
	"github.com/authledger/authledger/stream"
)

// Config names the server, the stream and its subjects.
type Config struct {
	// URL is the NATS server (nats://host:4222; may hold credentials).
	URL string
	// Stream is the JetStream stream's name (default AUTHLEDGER).
	Stream string
	// SubjectPrefix starts every subject (default authledger).
	SubjectPrefix string
	// DuplicateWindow is how long JetStream remembers a message id to
	// drop a duplicate (default 2m, JetStream's own default).
	DuplicateWindow time.Duration
	// Timeout bounds connecting and each publish's acknowledgement
	// (default 5s).
	Timeout time.Duration
	// ClientName names the connection on the server (monitoring).
	ClientName string
}

// Defaults of Config.
const (
	DefaultStream          = "AUTHLEDGER"
	DefaultSubjectPrefix   = "authledger"
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultTimeout         = 5 * time.Second
)

func (c Config) withDefaults() Config {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ClientName == "" {
		c.ClientName = "authledger"
	}
	return c
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("jetstream: URL is required"))
	}
	if strings.ContainsAny(c.Stream, ".*> \t") {
		errs = append(errs, fmt.Errorf("jetstream: stream name %q may not hold '.', '*', '>' or spaces", c.Stream))
	}
	if p := c.SubjectPrefix; strings.ContainsAny(p, "*> \t") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") {
		errs = append(errs, fmt.Errorf("jetstream: subject prefix %q must be dot-separated tokens without wildcards", p))
	}
	if c.DuplicateWindow < 0 || c.Timeout < 0 {
		errs = append(errs, errors.New("jetstream: durations must not be negative"))
	}
	return errors.Join(errs...)
}

// Subject is the subject of a public type under prefix.
func Subject(prefix, publicType string) string {
	return prefix + "." + strings.TrimPrefix(publicType, publicevents.TypePrefix)
}

// Publisher publishes public events to JetStream through Watermill.
type Publisher struct {
	cfg  Config
	conn *nats.Conn
	wm   message.Publisher
	// ensured: the stream was created or updated by this publisher. Only
	// the policy's one goroutine publishes.
	ensured bool
}

var _ stream.Publisher = (*Publisher)(nil)

// connect opens a connection that reconnects forever: the publisher's
// retries (the projection runner's) need it back, not a new one. With
// retry, a server that is down at start does not fail the connect: the
// client keeps trying in the background (serve starts without NATS, and
// the stream's lag shows in the meantime).
func connect(cfg Config, retry bool) (*nats.Conn, error) {
	conn, err := nats.Connect(cfg.URL, nats.Name(cfg.ClientName), nats.Timeout(cfg.Timeout),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.RetryOnFailedConnect(retry))
	if err != nil {
		return nil, fmt.Errorf("jetstream: connect: %w", err)
	}
	return conn, nil
}

// NewPublisher returns the publisher, connecting in the background; its
// first publish creates the stream if it is missing. The caller closes it.
func NewPublisher(cfg Config) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	conn, err := connect(cfg, true)
	if err != nil {
		return nil, err
	}
	wm, err := wmnats.NewPublisherWithNatsConn(conn, wmnats.PublisherPublishConfig{
		Marshaler:         &wmnats.NATSMarshaler{},
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
		JetStream: wmnats.JetStreamConfig{
			// The message UUID (the event id) becomes Nats-Msg-Id.
			TrackMsgId:     true,
			ConnectOptions: []nats.JSOpt{nats.MaxWait(cfg.Timeout)},
			// A subject no stream captures fails instead of vanishing.
			PublishOptions: []nats.PubOpt{nats.ExpectStream(cfg.Stream)},
		},
	}, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("jetstream: publisher: %w", err)
	}
	return &Publisher{cfg: cfg, conn: conn, wm: wm}, nil
}

// ensureStream creates the stream when it is missing. An existing one is
// left as it is (an operator may have set its retention, replicas or
// limits) once it is known to capture the prefix's subjects.
func ensureStream(ctx context.Context, conn *nats.Conn, cfg Config) error {
	j, err := js.New(conn)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	want := cfg.SubjectPrefix + ".>"
	_, err = j.CreateStream(ctx, js.StreamConfig{
		Name:        cfg.Stream,
		Description: "authledger's public events (docs/events)",
		Subjects:    []string{want},
		Storage:     js.FileStorage,
		Duplicates:  cfg.DuplicateWindow,
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, js.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("jetstream: create stream %s: %w", cfg.Stream, err)
	}
	s, err := j.Stream(ctx, cfg.Stream)
	if err != nil {
		return fmt.Errorf("jetstream: stream %s: %w", cfg.Stream, err)
	}
	if !slices.Contains(s.CachedInfo().Config.Subjects, want) {
		return fmt.Errorf("jetstream: stream %s exists but does not capture %s (its subjects: %v)", cfg.Stream, want, s.CachedInfo().Config.Subjects)
	}
	return nil
}

// Publish implements stream.Publisher: each event in turn, each
// acknowledged by JetStream before the next.
func (p *Publisher) Publish(ctx context.Context, events ...ce.Event) error {
	if !p.ensured {
		if err := ensureStream(ctx, p.conn, p.cfg); err != nil {
			return err
		}
		p.ensured = true
	}
	return stream.PublishEach(ctx, p.wm, func(e ce.Event) string { return Subject(p.cfg.SubjectPrefix, e.Type()) }, events)
}

// Close implements stream.Publisher (it closes the connection).
func (p *Publisher) Close() error { return p.wm.Close() }

// Received is one message of the stream as a subscriber reads it.
type Received struct {
	// Sequence is the message's sequence in the stream.
	Sequence uint64
	// Subject is the subject it was published to.
	Subject string
	// MsgID is the Nats-Msg-Id header (the event id).
	MsgID string
	Event ce.Event
}

// TailOptions choose what Tail delivers.
type TailOptions struct {
	// Types are public types to deliver (all when empty).
	Types []string
	// FromStart delivers the whole stream first; otherwise new messages
	// only.
	FromStart bool
}

// Tail subscribes to the stream (an ordered consumer: ephemeral, in
// stream order, recreated by the client after a gap) and calls fn with
// each message until ctx ends or fn fails.
func Tail(ctx context.Context, cfg Config, opts TailOptions, fn func(Received) error) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	for _, t := range opts.Types {
		if _, ok := publicevents.InternalName(t); !ok {
			return fmt.Errorf("jetstream: %q is not a published type (docs/events/README.md)", t)
		}
	}
	conn, err := connect(cfg, false)
	if err != nil {
		return err
	}
	defer conn.Close()
	j, err := js.New(conn)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	occ := js.OrderedConsumerConfig{DeliverPolicy: js.DeliverNewPolicy}
	if opts.FromStart {
		occ.DeliverPolicy = js.DeliverAllPolicy
	}
	wanted := map[string]bool{}
	for _, t := range opts.Types {
		wanted[t] = true
	}
	// One type filters on the server; several are filtered here, since
	// servers before 2.10 take one filter subject per consumer.
	if len(opts.Types) == 1 {
		occ.FilterSubjects = []string{Subject(cfg.SubjectPrefix, opts.Types[0])}
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	cons, err := j.OrderedConsumer(cctx, cfg.Stream, occ)
	cancel()
	if err != nil {
		return fmt.Errorf("jetstream: subscribe to %s: %w", cfg.Stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("jetstream: subscribe to %s: %w", cfg.Stream, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, js.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return fmt.Errorf("jetstream: read %s: %w", cfg.Stream, err)
		}
		r, err := received(msg)
		if err != nil {
			return err
		}
		if len(wanted) > 0 && !wanted[r.Event.Type()] {
			continue
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}

func received(msg js.Msg) (Received, error) {
	var r Received
	if md, err := msg.Metadata(); err == nil {
		r.Sequence = md.Sequence.Stream
	}
	r.Subject = msg.Subject()
	r.MsgID = msg.Headers().Get(nats.MsgIdHdr)
	if err := r.Event.UnmarshalJSON(msg.Data()); err != nil {
		return r, fmt.Errorf("jetstream: message %d on %s is not a CloudEvent: %w", r.Sequence, msg.Subject(), err)
	}
	return r, nil
}
