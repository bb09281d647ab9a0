// Package events holds the log's vocabulary: the metadata every event carries
// (ARCHITECTURE.md rule 8) and the explicit table from stable, versioned
// event names ("user.registered.v1") to Go types (rule 7).
//
// It imports no other package of this project, so any layer may use it.
package events

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	fastjson "github.com/goccy/go-json"
	"github.com/google/uuid"
)

// ActorKind says who caused an event.
type ActorKind string

const (
	ActorUser    ActorKind = "user"
	ActorService ActorKind = "service"
	ActorSystem  ActorKind = "system"
	// ActorAnonymous is an unauthenticated caller (a login attempt, a registration).
	ActorAnonymous ActorKind = "anonymous"
)

// Actor is who caused an event.
type Actor struct {
	Kind ActorKind `json:"kind"`
	// ID is the user id for ActorUser, the service name for ActorService;
	// empty otherwise.
	ID string `json:"id,omitempty"`
}

// Metadata travels with every event. It is stored as the event's JSON
// metadata, never inside its data, so projections such as the audit trail
// read it the same way for every type.
type Metadata struct {
	EventID       uuid.UUID `json:"event_id"`
	OccurredAt    time.Time `json:"occurred_at"`
	CorrelationID string    `json:"correlation_id,omitempty"`
	CausationID   string    `json:"causation_id,omitempty"`
	Actor         Actor     `json:"actor"`
	ClientIP      string    `json:"client_ip,omitempty"`
	UserAgent     string    `json:"user_agent,omitempty"`
}

// Bounds of the client-supplied text in Metadata, in bytes. The log keeps
// every event forever: a client must not choose how much of it one
// request takes (a 500 KB User-Agent on an anonymous login).
const (
	MaxUserAgentBytes = 512
	// MaxMetadataTextBytes bounds the other text fields (correlation and
	// causation ids, actor id, client IP): all far shorter when well formed.
	MaxMetadataTextBytes = 256
)

// Bounded returns m with every text field cut to its bound (Truncate).
// Whatever builds metadata for the log passes it through Bounded.
func (m Metadata) Bounded() Metadata {
	m.CorrelationID = Truncate(m.CorrelationID, MaxMetadataTextBytes)
	m.CausationID = Truncate(m.CausationID, MaxMetadataTextBytes)
	m.Actor.ID = Truncate(m.Actor.ID, MaxMetadataTextBytes)
	m.ClientIP = Truncate(m.ClientIP, MaxMetadataTextBytes)
	m.UserAgent = Truncate(m.UserAgent, MaxUserAgentBytes)
	return m
}

// Truncate returns s as valid UTF-8 of at most n bytes: invalid bytes
// become U+FFFD (as JSON encoding would make them anyway) and the cut
// falls between characters. It reads at most about n bytes of s.
func Truncate(s string, n int) string {
	if len(s) <= n && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), n))
	for _, r := range s { // an invalid byte comes as utf8.RuneError
		if b.Len()+utf8.RuneLen(r) > n {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Event is implemented by every event payload type. EventName must return a
// constant: the name is data in the log and outlives the Go type.
type Event interface {
	EventName() string
}

// Registry maps event names to Go types. Names are registered explicitly,
// never derived from Go type names, so renaming a type cannot change the log.
type Registry struct {
	mu    sync.RWMutex
	types map[string]reflect.Type
	// upcasters turn an old version's JSON into the current one's, keyed by
	// the old name.
	upcasters map[string]Upcaster
}

// Upcaster rewrites an old event version's data into a newer name and shape,
// so old versions stay readable forever without rewriting the log.
type Upcaster func(data json.RawMessage) (newName string, newData json.RawMessage, err error)

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{types: map[string]reflect.Type{}, upcasters: map[string]Upcaster{}}
}

// Register adds event types. It fails when a name is taken by another type
// or when a type's EventName is empty.
func (r *Registry) Register(evs ...Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range evs {
		name := e.EventName()
		if name == "" {
			return fmt.Errorf("events: %T has an empty name", e)
		}
		t := reflect.TypeOf(e)
		if prev, ok := r.types[name]; ok && prev != t {
			return fmt.Errorf("events: name %q is taken by %v, cannot register %v", name, prev, t)
		}
		r.types[name] = t
	}
	return nil
}

// MustRegister is Register for package initialisation of constant tables.
func (r *Registry) MustRegister(evs ...Event) {
	if err := r.Register(evs...); err != nil {
		panic(err)
	}
}

// RegisterUpcaster makes old, a retired event name, readable by rewriting it.
func (r *Registry) RegisterUpcaster(old string, up Upcaster) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.upcasters[old] = up
}

// Names lists the registered names in order.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ErrUnknownEvent is returned by Decode for a name nobody registered.
type ErrUnknownEvent struct{ Name string }

func (e ErrUnknownEvent) Error() string { return fmt.Sprintf("events: unknown event %q", e.Name) }

// Decode turns a stored name and JSON into the registered Go value, upcasting
// old versions first.
func (r *Registry) Decode(name string, data json.RawMessage) (Event, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for i := 0; i < 16; i++ {
		up, ok := r.upcasters[name]
		if !ok {
			break
		}
		n, d, err := up(data)
		if err != nil {
			return nil, fmt.Errorf("events: upcast %q: %w", name, err)
		}
		name, data = n, d
	}
	t, ok := r.types[name]
	if !ok {
		return nil, ErrUnknownEvent{Name: name}
	}
	ptr := t.Kind() == reflect.Pointer
	base := t
	if ptr {
		base = t.Elem()
	}
	v := reflect.New(base)
	// A personal value still sealed (not opened by eventstore/sealed)
	// reads as null, as an erased one does (ADR 0034).
	data = withSealedAsNull(data)
	// goccy/go-json, a drop-in for encoding/json: decoding is most of an
	// aggregate load's CPU, and encoding/json scans the input twice
	// (validate, then decode).
	if err := fastjson.Unmarshal(data, v.Interface()); err != nil {
		return nil, fmt.Errorf("events: decode %q: %w", name, err)
	}
	if ptr {
		return v.Interface().(Event), nil
	}
	return v.Elem().Interface().(Event), nil
}

// Encode returns an event's name and JSON (goccy/go-json too: every
// command encodes what it appends). Encode, EncodeMetadata and
// Registry.Decode are the log's one JSON encoding: nothing else writes or
// reads an event's data (test/decoding_test.go holds the readers to it).
func Encode(e Event) (string, json.RawMessage, error) {
	b, err := fastjson.Marshal(e)
	if err != nil {
		return "", nil, fmt.Errorf("events: encode %s: %w", e.EventName(), err)
	}
	return e.EventName(), b, nil
}

// EncodeMetadata returns m, cut to its bounds (Metadata.Bounded), as the
// JSON stored beside an event's data.
func EncodeMetadata(m Metadata) (json.RawMessage, error) {
	b, err := fastjson.Marshal(m.Bounded())
	if err != nil {
		return nil, fmt.Errorf("events: encode metadata: %w", err)
	}
	return b, nil
}
