// Package sealed is an event store decorator that keeps personal data out
// of the log in clear: on append it seals the personal members of each
// event's data (events.Personal) and the client IP and user agent of its
// metadata with AES-256-GCM under the data subject's key (auth/datakeys),
// each as an envelope
//
//	{"enc":"v1","kid":"<user id>","ct":"<base64: nonce || ciphertext>"}
//
// in place of the member's value; on read it opens them again, so every
// reader above it sees the plain shapes it always did. Once the subject is
// erased its envelopes open to null (data) or vanish (metadata): the log
// is never rewritten, but what it holds of the user can no longer be read.
// Events written before sealing existed have no envelope and read as they
// are (ADR 0034).
//
// The additional data of each envelope is "authledger personal data v1",
// the key id and the member's path (data.email, metadata.client_ip), so a
// ciphertext moved to another member or user does not open.
//
// Readers that must see the log's own bytes (the audit trail's chain) use
// RecordedEvent.AsLogged.
package sealed

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/datakeys"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

// Version is the envelope format's "enc" value.
const Version = events.SealedVersion

// Keys are the data keys (auth/datakeys.Keyring).
type Keys interface {
	// ForSealing fails with datakeys.ErrErased for an erased user.
	ForSealing(ctx context.Context, user uuid.UUID) (cipher.AEAD, error)
	// ForOpening fails with datakeys.ErrErased for an erased user.
	ForOpening(ctx context.Context, user uuid.UUID) (cipher.AEAD, error)
}

// metadataMembers are the metadata members sealed: where a request came from.
var metadataMembers = []string{"client_ip", "user_agent"}

// Store seals on Append and opens on every read of the store it wraps.
type Store struct {
	eventstore.Store
	keys Keys
	reg  *events.Registry
}

// New wraps store. reg must know every event type that implements
// events.Personal (an event it does not know is appended with its data
// as it is; its metadata is still sealed).
func New(store eventstore.Store, keys Keys, reg *events.Registry) (*Store, error) {
	if store == nil || keys == nil || reg == nil {
		return nil, errors.New("sealed: New needs a store, the data keys and a registry")
	}
	return &Store{Store: store, keys: keys, reg: reg}, nil
}

// Unwrap is the store this one wraps.
func (s *Store) Unwrap() eventstore.Store { return s.Store }

// envelope is one sealed value.
type envelope struct {
	Enc string `json:"enc"`
	Kid string `json:"kid"`
	CT  string `json:"ct"`
}

func aad(kid uuid.UUID, path string) []byte {
	return []byte("authledger personal data v1\x00" + kid.String() + "\x00" + path)
}

// Append seals each event's personal data, then appends.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, evs ...eventstore.EventData) (eventstore.AppendResult, error) {
	out := make([]eventstore.EventData, len(evs))
	for i, ev := range evs {
		sealed, err := s.seal(ctx, ev)
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("sealed: %s on %s: %w", ev.Type, stream, err)
		}
		out[i] = sealed
	}
	return s.Store.Append(ctx, stream, expected, out...)
}

func (s *Store) seal(ctx context.Context, ev eventstore.EventData) (eventstore.EventData, error) {
	var subject uuid.UUID
	var members []string
	if e, err := s.reg.Decode(ev.Type, ev.Data); err == nil {
		if p, ok := e.(events.Personal); ok {
			subject, members = p.PersonalData()
		}
	}
	if subject != uuid.Nil && len(members) > 0 {
		data, err := s.sealMembers(ctx, ev.Data, subject, "data.", members, false)
		if err != nil {
			return ev, err
		}
		ev.Data = data
	}
	if len(ev.Metadata) == 0 {
		return ev, nil
	}
	metaSubject := subject
	if metaSubject == uuid.Nil {
		var md struct {
			Actor events.Actor `json:"actor"`
		}
		if err := json.Unmarshal(ev.Metadata, &md); err == nil && md.Actor.Kind == events.ActorUser {
			metaSubject, _ = uuid.Parse(md.Actor.ID)
		}
	}
	if metaSubject == uuid.Nil {
		metaSubject = namedUser(ev.Data)
	}
	if metaSubject == uuid.Nil {
		return ev, nil
	}
	md, err := s.sealMembers(ctx, ev.Metadata, metaSubject, "metadata.", metadataMembers, true)
	if err != nil {
		return ev, err
	}
	ev.Metadata = md
	return ev, nil
}

// sealMembers replaces each named member of the JSON object doc that has a
// value (not null, not "") by its envelope. For an erased subject the
// value goes instead: null, or, with drop, the member itself.
func (s *Store) sealMembers(ctx context.Context, doc json.RawMessage, subject uuid.UUID, prefix string, members []string, drop bool) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(doc, &obj); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	changed := false
	var aead cipher.AEAD
	erased := false
	for _, m := range members {
		v, ok := obj[m]
		if !ok || isEmpty(v) {
			continue
		}
		if aead == nil && !erased {
			var err error
			aead, err = s.keys.ForSealing(ctx, subject)
			switch {
			case errors.Is(err, datakeys.ErrErased):
				erased = true
			case err != nil:
				return nil, err
			}
		}
		changed = true
		if erased {
			if drop {
				delete(obj, m)
			} else {
				obj[m] = json.RawMessage("null")
			}
			continue
		}
		nonce := make([]byte, aead.NonceSize())
		_, _ = rand.Read(nonce) // crypto/rand.Read never fails (Go 1.24+)
		ct := aead.Seal(nonce, nonce, v, aad(subject, prefix+m))
		env, err := json.Marshal(envelope{Enc: Version, Kid: subject.String(), CT: base64.StdEncoding.EncodeToString(ct)})
		if err != nil {
			return nil, err
		}
		obj[m] = env
	}
	if !changed {
		return doc, nil
	}
	return json.Marshal(obj)
}

// namedUser is the user an event's data names (user_id, else owner_id):
// whose request an anonymous one was (a login, a refresh), so that its
// metadata is sealed under their key.
func namedUser(data json.RawMessage) uuid.UUID {
	var named struct {
		UserID  uuid.UUID `json:"user_id"`
		OwnerID uuid.UUID `json:"owner_id"`
	}
	if json.Unmarshal(data, &named) != nil {
		return uuid.Nil
	}
	if named.UserID != uuid.Nil {
		return named.UserID
	}
	return named.OwnerID
}

func isEmpty(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) == 0 || bytes.Equal(v, []byte("null")) || bytes.Equal(v, []byte(`""`))
}

// Open returns ev with its envelopes opened (Logged keeps the log's
// bytes): the plain value while the subject's key lives, null in data and
// nothing in metadata once it is erased. An event without envelopes comes
// back as it is. An envelope that does not open (tampered, or the key
// table lost) is an error: a reader must not take it for erased data.
func (s *Store) Open(ctx context.Context, ev eventstore.RecordedEvent) (eventstore.RecordedEvent, error) {
	if ev.Logged != nil || (!mayHold(ev.Data) && !mayHold(ev.Metadata)) {
		return ev, nil
	}
	logged := &eventstore.LoggedBytes{Data: ev.Data, Metadata: ev.Metadata}
	data, err := s.openMembers(ctx, ev.Data, "data.", false)
	if err != nil {
		return ev, fmt.Errorf("sealed: open %s %s@%d: %w", ev.Type, ev.Stream, ev.Revision, err)
	}
	md, err := s.openMembers(ctx, ev.Metadata, "metadata.", true)
	if err != nil {
		return ev, fmt.Errorf("sealed: open the metadata of %s %s@%d: %w", ev.Type, ev.Stream, ev.Revision, err)
	}
	ev.Data, ev.Metadata, ev.Logged = data, md, logged
	return ev, nil
}

// mayHold is a cheap test that doc may hold an envelope.
func mayHold(doc json.RawMessage) bool { return bytes.Contains(doc, []byte(`"enc"`)) }

func (s *Store) openMembers(ctx context.Context, doc json.RawMessage, prefix string, drop bool) (json.RawMessage, error) {
	if !mayHold(doc) {
		return doc, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(doc, &obj); err != nil {
		return doc, nil //nolint:nilerr // not an object: nothing of ours to open
	}
	changed := false
	for m, v := range obj {
		env, ok := asEnvelope(v)
		if !ok {
			continue
		}
		changed = true
		plain, err := s.openOne(ctx, env, prefix+m)
		switch {
		case errors.Is(err, datakeys.ErrErased):
			if drop {
				delete(obj, m)
			} else {
				obj[m] = json.RawMessage("null")
			}
		case err != nil:
			return nil, fmt.Errorf("%s: %w", prefix+m, err)
		default:
			obj[m] = plain
		}
	}
	if !changed {
		return doc, nil
	}
	return json.Marshal(obj)
}

func asEnvelope(v json.RawMessage) (envelope, bool) {
	if !events.IsSealed(v) {
		return envelope{}, false
	}
	var env envelope
	if err := json.Unmarshal(bytes.TrimSpace(v), &env); err != nil {
		return envelope{}, false
	}
	return env, true
}

func (s *Store) openOne(ctx context.Context, env envelope, path string) (json.RawMessage, error) {
	kid, err := uuid.Parse(env.Kid)
	if err != nil {
		return nil, fmt.Errorf("key id %q: %w", env.Kid, err)
	}
	aead, err := s.keys.ForOpening(ctx, kid)
	if err != nil {
		return nil, err
	}
	ct, err := base64.StdEncoding.DecodeString(env.CT)
	if err != nil || len(ct) < aead.NonceSize() {
		return nil, errors.New("malformed ciphertext")
	}
	ns := aead.NonceSize()
	plain, err := aead.Open(nil, ct[:ns], ct[ns:], aad(kid, path))
	if err != nil {
		return nil, fmt.Errorf("does not open: %w", err)
	}
	return plain, nil
}

func (s *Store) openAll(ctx context.Context, evs []eventstore.RecordedEvent, err error) ([]eventstore.RecordedEvent, error) {
	if err != nil {
		return evs, err
	}
	for i := range evs {
		if evs[i], err = s.Open(ctx, evs[i]); err != nil {
			return nil, err
		}
	}
	return evs, nil
}

// ReadStream reads and opens.
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	evs, err := s.Store.ReadStream(ctx, stream, opts)
	return s.openAll(ctx, evs, err)
}

// ReadAll reads and opens.
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error) {
	evs, err := s.Store.ReadAll(ctx, opts)
	return s.openAll(ctx, evs, err)
}

// Subscribe opens each event before handle sees it; one that does not
// open ends the subscription with the error.
func (s *Store) Subscribe(ctx context.Context, opts eventstore.SubscribeOptions, handle eventstore.Handler) error {
	return s.Store.Subscribe(ctx, opts, func(ctx context.Context, ev eventstore.RecordedEvent) error {
		opened, err := s.Open(ctx, ev)
		if err != nil {
			return err
		}
		return handle(ctx, opened)
	})
}

// CountAfter passes on the wrapped store's EventCounter capability
// (projector.EventCounter), which projections status uses for lag.
func (s *Store) CountAfter(ctx context.Context, after eventstore.Position, f eventstore.Filter) (int64, error) {
	c, ok := s.Store.(interface {
		CountAfter(context.Context, eventstore.Position, eventstore.Filter) (int64, error)
	})
	if !ok {
		return 0, errors.ErrUnsupported
	}
	return c.CountAfter(ctx, after, f)
}

// OpenData opens the envelopes among the top-level members of doc, a
// JSON object shaped like an event's data (the audit trail's summary of
// one): erased values read as null. A value that does not open (the
// trail cut a long envelope) is left as it is.
func (s *Store) OpenData(ctx context.Context, doc json.RawMessage) json.RawMessage {
	if !mayHold(doc) {
		return doc
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(doc, &obj); err != nil {
		return doc
	}
	changed := false
	for m, v := range obj {
		env, ok := asEnvelope(v)
		if !ok {
			continue
		}
		plain, err := s.openOne(ctx, env, "data."+m)
		switch {
		case errors.Is(err, datakeys.ErrErased):
			obj[m], changed = json.RawMessage("null"), true
		case err == nil:
			obj[m], changed = plain, true
		}
	}
	if !changed {
		return doc
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return doc
	}
	return out
}

// OpenMetadataText opens a metadata member (client_ip, user_agent) that
// the audit trail recorded sealed, as its envelope's JSON text: the plain
// text, or "" once erased. Text that is no envelope comes back as it is.
func (s *Store) OpenMetadataText(ctx context.Context, member, text string) string {
	env, ok := asEnvelope(json.RawMessage(text))
	if !ok {
		return text
	}
	plain, err := s.openOne(ctx, env, "metadata."+member)
	if err != nil {
		return ""
	}
	var v string
	if json.Unmarshal(plain, &v) != nil {
		return ""
	}
	return v
}
