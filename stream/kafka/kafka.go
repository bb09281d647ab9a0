// Package kafka is the analytics stream's second adapter: a
// stream.Publisher over Watermill's Kafka publisher (watermill-kafka/v3,
// sarama's synchronous producer). serve does not wire it (no Kafka here;
// docs/analytics.md says how); its message form is unit-tested.
//
// Every public event goes to one topic (Topic), keyed by its CloudEvents
// subject, so that each user's, session's or task's events keep their log
// order within their partition while partitions spread the load. The
// value is the CloudEvents JSON (structured mode, content-type header
// application/cloudevents+json); the event id is in the
// _watermill_message_uuid header and in the payload's id, the key a
// consumer de-duplicates on: Kafka keeps no id window the way JetStream
// does, and the idempotent producer only removes its own retries.
package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	ce "github.com/cloudevents/sdk-go/v2/event"

	"github.com/authledger/authledger/stream"
)

// DefaultTopic is the topic of every public event.
const DefaultTopic = "authledger.events"

// Config names the brokers and the topic.
type Config struct {
	Brokers []string
	// Topic defaults to DefaultTopic.
	Topic string
	// ClientID names the producer on the brokers (default authledger).
	ClientID string
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka: at least one broker is required"))
	}
	for _, b := range c.Brokers {
		if b == "" {
			errs = append(errs, errors.New("kafka: empty broker address"))
		}
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.ClientID == "" {
		c.ClientID = "authledger"
	}
	return c
}

// Marshaler is the Kafka form of a stream.Message: Watermill's default
// headers and value, keyed by the event's subject.
func Marshaler() wmkafka.MarshalerUnmarshaler {
	return wmkafka.NewWithPartitioningMarshaler(func(_ string, m *message.Message) (string, error) {
		s := m.Metadata.Get(stream.MetadataSubject)
		if s == "" {
			return "", fmt.Errorf("kafka: message %s has no subject to key it by", m.UUID)
		}
		return s, nil
	})
}

// SaramaConfig is the producer's configuration: every in-sync replica
// acknowledges, the idempotent producer (no duplicate or reordering from
// its own retries, which needs one request in flight), successes returned
// to the synchronous producer.
func SaramaConfig(clientID string) *sarama.Config {
	c := wmkafka.DefaultSaramaSyncPublisherConfig()
	c.ClientID = clientID
	c.Version = sarama.V2_1_0_0
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	return c
}

// Publisher publishes public events to Kafka through Watermill.
type Publisher struct {
	topic string
	wm    message.Publisher
}

var _ stream.Publisher = (*Publisher)(nil)

// NewPublisher connects to the brokers. The caller closes it.
func NewPublisher(cfg Config) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	wm, err := wmkafka.NewPublisher(wmkafka.PublisherConfig{
		Brokers: cfg.Brokers, Marshaler: Marshaler(), OverwriteSaramaConfig: SaramaConfig(cfg.ClientID),
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("kafka: publisher: %w", err)
	}
	return &Publisher{topic: cfg.Topic, wm: wm}, nil
}

// Publish implements stream.Publisher: each event in turn, acknowledged
// before the next.
func (p *Publisher) Publish(ctx context.Context, events ...ce.Event) error {
	return stream.PublishEach(ctx, p.wm, func(ce.Event) string { return p.topic }, events)
}

// Close implements stream.Publisher.
func (p *Publisher) Close() error { return p.wm.Close() }
