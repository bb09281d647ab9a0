// Package stream is the analytics stream: a policy that follows the log
// from its own checkpoint and publishes every public event
// (publicevents) to a broker, at least once and in log order, through
// the Publisher port. Adapters: stream/jetstream (NATS JetStream, the one
// serve wires) and stream/kafka (documented, not wired here).
//
// The policy runs under the projection runner like the other policies
// (projections/projector.SideEffect): one instance at a time, its
// checkpoint in projection_checkpoints, its lag in `projections status`,
// /readyz and the projection metrics. The checkpoint commits after the
// broker acknowledged the events before it, so a publisher killed
// mid-batch republishes from its last checkpoint: duplicates, never a
// gap. Every duplicate carries the same id (the internal event id),
// which JetStream de-duplicates within its window and any consumer can.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"
	ce "github.com/cloudevents/sdk-go/v2/event"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/outage"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/publicevents"
)

// Name is the publisher's checkpoint name. Renaming it republishes the
// whole log (consumers see every id again).
const Name = "event_stream"

// Publisher is the port the policy publishes through. Publish returns
// once the broker has durably accepted every event, in order; an error
// means some may not have been, and the same events are published again.
type Publisher interface {
	Publish(ctx context.Context, events ...ce.Event) error
	Close() error
}

// Config is what the policy needs; Logger may be nil.
type Config struct {
	Publisher Publisher
	Mapper    *publicevents.Mapper
	Logger    *slog.Logger
}

// Filter selects the published events.
func Filter() eventstore.Filter { return publicevents.Filter() }

// Descriptor is the policy as `projections status` reads it.
func Descriptor() projector.Projection { return projector.Descriptor(Name, Filter()) }

// New returns the publishing policy, run like a projection. A publish
// that fails is an outage of the broker: retried with backoff, forever,
// from the checkpoint (the event is never passed over).
func New(cfg Config) (projector.Projection, error) {
	if cfg.Publisher == nil || cfg.Mapper == nil {
		return nil, errors.New("stream: a Publisher and a Mapper are required")
	}
	p := &policy{cfg: cfg}
	return projector.NewSideEffect(projector.SideEffect{Name: Name, Filter: Filter(), Apply: p.publish, Logger: cfg.Logger})
}

type policy struct{ cfg Config }

func (p *policy) publish(ctx context.Context, ev eventstore.RecordedEvent) error {
	out, ok, err := p.cfg.Mapper.Map(ev)
	if err != nil || !ok {
		return err
	}
	if err := p.cfg.Publisher.Publish(ctx, out); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: stream: publish %s %s: %w", outage.ErrUnavailable, out.Type(), out.ID(), err)
	}
	return nil
}

// Message is e as a Watermill message, the form both adapters hand their
// Watermill publisher: the CloudEvents JSON (structured mode) as the
// payload, the event id as the message UUID (the adapters' de-duplication
// id), and the type and subject in the metadata, for brokers that route
// or filter on headers.
func Message(e ce.Event) (*message.Message, error) {
	payload, err := e.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("stream: encode %s: %w", e.ID(), err)
	}
	m := message.NewMessage(e.ID(), payload)
	m.Metadata.Set(MetadataContentType, publicevents.ContentType)
	m.Metadata.Set(MetadataType, e.Type())
	m.Metadata.Set(MetadataSubject, e.Subject())
	return m, nil
}

// PublishEach is what both adapters' Publish do: each event in turn as a
// Message through wm to topic(event), each one acknowledged by the broker
// (Watermill's Publish returns after it) before the next, which keeps the
// broker in log order.
func PublishEach(ctx context.Context, wm message.Publisher, topic func(ce.Event) string, events []ce.Event) error {
	for _, e := range events {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := Message(e)
		if err != nil {
			return err
		}
		if err := wm.Publish(topic(e), m); err != nil {
			return fmt.Errorf("stream: publish %s: %w", e.ID(), err)
		}
	}
	return nil
}

// Metadata keys of a Message (message headers on the wire: the
// CloudEvents binding's ce- prefix names the attributes it repeats).
const (
	MetadataContentType = "content-type"
	MetadataType        = "ce-type"
	MetadataSubject     = "ce-subject"
)
