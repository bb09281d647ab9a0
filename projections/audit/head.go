package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// HeadType is the JWS "typ" of a signed head, so that no other JWS signed
// under the same key (there is none today) can pass for one.
const HeadType = "authledger-audit-head+jws"

// Head pins the audit chain at one moment: the link of row Count, which
// depends on every event of the log up to Position and on the chain key.
// `authledger audit head` signs one; the operator keeps it outside the
// database, and Verify with that head fails once the log or the trail no
// longer passes through it (truncated, or rewritten before it). The JSON
// names are a file format: add, never rename.
type Head struct {
	// Count is the number of rows chained: the seq of the head row.
	Count int64 `json:"count"`
	// Hash is the keyed link of row Count (64 hex digits).
	Hash string `json:"hash"`
	// Position is the log position of the head row's event.
	Position string `json:"position"`
	// EventID is the head row's event.
	EventID string `json:"event_id"`
	// At is when the head was signed.
	At time.Time `json:"at"`
}

// ErrBadHead: a head that does not verify under the head key (another
// master key, a changed file), or is not a head at all.
var ErrBadHead = errors.New("audit: not a head signed under this master key")

// SignHead signs h as a compact JWS (HS256) under key, a key derived from
// the master key for heads alone (not the chain key).
func SignHead(h Head, key []byte) ([]byte, error) {
	if len(key) < KeySize {
		return nil, errors.New("audit: the head key is too short")
	}
	payload, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("audit: head: %w", err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, HeadType); err != nil {
		return nil, fmt.Errorf("audit: head: %w", err)
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.HS256(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return nil, fmt.Errorf("audit: sign head: %w", err)
	}
	return out, nil
}

// ParseHead verifies a signed head (surrounding white space ignored) under
// key and returns it.
func ParseHead(b, key []byte) (Head, error) {
	msg := jws.NewMessage()
	payload, err := jws.Verify(bytes.TrimSpace(b), jws.WithKey(jwa.HS256(), key), jws.WithCompact(), jws.WithMessage(msg))
	if err != nil {
		return Head{}, fmt.Errorf("%w: %v", ErrBadHead, err)
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 {
		return Head{}, fmt.Errorf("%w: it has %d signatures", ErrBadHead, len(sigs))
	}
	if typ, _ := sigs[0].ProtectedHeaders().Type(); typ != HeadType {
		return Head{}, fmt.Errorf("%w: its type is not %s", ErrBadHead, HeadType)
	}
	var h Head
	if err := json.Unmarshal(payload, &h); err != nil {
		return Head{}, fmt.Errorf("%w: %v", ErrBadHead, err)
	}
	if h.Count <= 0 || len(h.Hash) != 64 || len(h.Position) != 32 || h.EventID == "" {
		return Head{}, fmt.Errorf("%w: incomplete (count %d)", ErrBadHead, h.Count)
	}
	return h, nil
}
