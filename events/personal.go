package events

import (
	"bytes"
	"encoding/json"

	"github.com/google/uuid"
)

// Personal is implemented by an event whose data holds personal data of
// one user (an address, a name, an IP address, a user agent, a file name,
// OCR text). The event store seals the named members under that user's
// data key before they reach the log (eventstore/sealed), and readers get
// them back in clear until the user is erased, then as JSON null (the Go
// zero value). ADR 0034 says how a new event type opts in: implement
// this, naming top-level JSON members of the event's data.
//
// Subject uuid.Nil (a user not known yet) leaves the event in clear. The
// metadata's client IP and user agent of every event are sealed under
// the subject, or, without one, under the acting user, or else under the
// user the data names as user_id or owner_id.
type Personal interface {
	Event
	// PersonalData returns the user whose key seals the members and the
	// JSON names of the members. It reads only the receiver.
	PersonalData() (subject uuid.UUID, members []string)
}

// SealedVersion is the "enc" of the envelope that stands for a sealed
// personal value in the log: {"enc":"v1","kid":"<user id>","ct":"..."}
// (eventstore/sealed writes and opens them).
const SealedVersion = "v1"

// sealedValue is the envelope's shape.
type sealedValue struct {
	Enc string `json:"enc"`
	Kid string `json:"kid"`
	CT  string `json:"ct"`
}

// IsSealed reports whether v, a JSON value, is a sealed envelope.
func IsSealed(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || v[0] != '{' || !bytes.Contains(v, []byte(`"enc"`)) {
		return false
	}
	var s sealedValue
	return json.Unmarshal(v, &s) == nil && s.Enc == SealedVersion && s.Kid != "" && s.CT != ""
}

// withSealedAsNull returns data with every top-level member that is still
// a sealed envelope replaced by null: what Decode reads when a reader was
// handed the log's bytes without opening them (a reader below
// eventstore/sealed), the same as a value whose subject was erased.
func withSealedAsNull(data json.RawMessage) json.RawMessage {
	if !bytes.Contains(data, []byte(`"enc"`)) {
		return data
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return data
	}
	changed := false
	for k, v := range obj {
		if IsSealed(v) {
			obj[k], changed = json.RawMessage("null"), true
		}
	}
	if !changed {
		return data
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return data
	}
	return out
}
