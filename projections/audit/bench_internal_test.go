package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/eventstore"
)

// BenchmarkRowAndLink measures the projection's CPU work per event outside
// the database, as a batch does it: the row (summary and event digest) and
// its keyed link with the batch's MAC.
func BenchmarkRowAndLink(b *testing.B) {
	data, _ := json.Marshal(map[string]any{
		"session_id": uuid.NewString(), "user_id": uuid.NewString(), "refresh_token_digest": strings.Repeat("a", 64),
		"expires_at": time.Now().Format(time.RFC3339Nano), "amr": []string{"pwd"},
		"claims": map[string]any{"email": "ada@example.com", "name": "Ada", "roles": []string{"user"}},
	})
	md, _ := json.Marshal(map[string]any{
		"event_id": uuid.NewString(), "occurred_at": time.Now().UTC(), "correlation_id": "req-0123456789",
		"actor": map[string]string{"kind": "user", "id": uuid.NewString()}, "client_ip": "192.0.2.7", "user_agent": "bench/1.0",
	})
	ev := eventstore.RecordedEvent{ID: uuid.New(), Stream: "session-" + uuid.NewString(), Revision: 3,
		Position: eventstore.Position{Commit: 123456, Prepare: 7}, Type: "session.started.v1", Data: data, Metadata: md, RecordedAt: time.Now()}
	mac := hmac.New(sha256.New, []byte("benchmark chain key of 32 bytes."))
	prev := make([]byte, sha256.Size)
	for b.Loop() {
		r := RowFromEvent(ev)
		r.Seq = 1
		prev = chainLink(mac, prev, r)
	}
}
