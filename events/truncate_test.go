package events_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/authledger/authledger/events"
)

func TestTruncate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // the é would be cut in half
		{"a\xffb", 10, "a\uFFFDb"},
		{"a\xffb", 3, "a"},
		{"日本語", 7, "日本"},
		{"", 0, ""},
	} {
		got := events.Truncate(tc.in, tc.n)
		if got != tc.want || len(got) > tc.n || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	m := events.Metadata{UserAgent: strings.Repeat("é", 1000), ClientIP: strings.Repeat("1", 1000), CorrelationID: "c"}.Bounded()
	if len(m.UserAgent) != events.MaxUserAgentBytes || len(m.ClientIP) != events.MaxMetadataTextBytes || m.CorrelationID != "c" {
		t.Errorf("Bounded: %d, %d, %q", len(m.UserAgent), len(m.ClientIP), m.CorrelationID)
	}
}
