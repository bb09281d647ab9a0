package kafka_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/authledger/authledger/publicevents"
	"github.com/authledger/authledger/stream"
	"github.com/authledger/authledger/stream/kafka"
)

func event(t *testing.T) ce.Event {
	t.Helper()
	e := ce.New()
	e.SetID(uuid.NewString())
	e.SetSource("https://id.example.test")
	e.SetType(publicevents.Type("session.started.v1"))
	e.SetSubject(uuid.NewString())
	e.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err := e.SetData(ce.ApplicationJSON, map[string]any{"session_id": e.Subject(), "method": "password"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// A public event becomes a Kafka record keyed by its subject (one entity's
// events in one partition, in order), with the CloudEvents JSON as the
// value, the structured-mode content type and the event id in the
// headers; a consumer's Unmarshal gives the same event back.
func TestAnEventIsARecordKeyedByItsSubject(t *testing.T) {
	t.Parallel()
	e := event(t)
	m, err := stream.Message(e)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := kafka.Marshaler().Marshal(kafka.DefaultTopic, m)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := rec.Key.Encode()
	if rec.Topic != kafka.DefaultTopic || string(key) != e.Subject() {
		t.Fatalf("topic %q key %q, want %q %q", rec.Topic, key, kafka.DefaultTopic, e.Subject())
	}
	headers := map[string]string{}
	for _, h := range rec.Headers {
		headers[string(h.Key)] = string(h.Value)
	}
	if headers[wmkafka.UUIDHeaderKey] != e.ID() || headers["content-type"] != publicevents.ContentType || headers["ce-type"] != e.Type() {
		t.Fatalf("headers %v", headers)
	}
	value, _ := rec.Value.Encode()
	var got ce.Event
	if err := json.Unmarshal(value, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID() != e.ID() || got.Type() != e.Type() || got.Subject() != e.Subject() || !got.Time().Equal(e.Time()) || string(got.Data()) != string(e.Data()) {
		t.Fatalf("value %s is not the event %v", value, e)
	}

	// What a consumer's subscriber hands back.
	consumed := &sarama.ConsumerMessage{Topic: rec.Topic, Key: key, Value: value}
	for _, h := range rec.Headers {
		consumed.Headers = append(consumed.Headers, &sarama.RecordHeader{Key: h.Key, Value: h.Value})
	}
	back, err := kafka.Marshaler().Unmarshal(consumed)
	if err != nil {
		t.Fatal(err)
	}
	if back.UUID != e.ID() || string(back.Payload) != string(value) {
		t.Fatalf("unmarshalled %s %s", back.UUID, back.Payload)
	}
}

// A message without a subject cannot be keyed: refused, not sent to a
// random partition (which would lose the entity's order).
func TestAMessageWithoutASubjectIsRefused(t *testing.T) {
	t.Parallel()
	e := event(t)
	m, err := stream.Message(e)
	if err != nil {
		t.Fatal(err)
	}
	m.Metadata.Set(stream.MetadataSubject, "")
	if _, err := kafka.Marshaler().Marshal(kafka.DefaultTopic, m); err == nil || !strings.Contains(err.Error(), "subject") {
		t.Fatalf("marshal without a subject: %v", err)
	}
}

// The producer waits for every in-sync replica and is idempotent (its own
// retries neither duplicate nor reorder), with one request in flight,
// which sarama requires of an idempotent producer and checks.
func TestTheProducerIsIdempotentAndWaitsForAllReplicas(t *testing.T) {
	t.Parallel()
	c := kafka.SaramaConfig("authledger")
	if !c.Producer.Idempotent || c.Producer.RequiredAcks != sarama.WaitForAll || c.Net.MaxOpenRequests != 1 || !c.Producer.Return.Successes {
		t.Fatalf("producer config: idempotent %v acks %v open requests %d successes %v",
			c.Producer.Idempotent, c.Producer.RequiredAcks, c.Net.MaxOpenRequests, c.Producer.Return.Successes)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("sarama refuses the config: %v", err)
	}
}

// Config reports every problem at once.
func TestConfigNeedsBrokers(t *testing.T) {
	t.Parallel()
	if err := (kafka.Config{}).Validate(); err == nil {
		t.Error("no brokers accepted")
	}
	if err := (kafka.Config{Brokers: []string{"a:9092", ""}}).Validate(); err == nil {
		t.Error("an empty broker accepted")
	}
	if _, err := kafka.NewPublisher(kafka.Config{}); err == nil {
		t.Error("a publisher without brokers was built")
	}
}
