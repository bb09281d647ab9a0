package bench_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/bench"
	"github.com/authledger/authledger/test/pgtest"
)

// TestExternalTable runs a short external section end to end against the
// test provider: every row of both tables must be there (the section
// itself checks that no login reached the provider with the breaker open,
// and that every timing try was refused as invalid credentials). It says
// nothing about speed.
func TestExternalTable(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := bench.Run(t.Context(), &out, bench.Config{
		DatabaseURL: pgtest.BaseURL(t),
		RowDuration: 300 * time.Millisecond,
		Sections:    []string{"external"},
		TimingTries: 8,
	})
	got := out.String()
	t.Log("\n" + got)
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	for _, want := range []string{"## External login", "provider alone (external.Client.Login)", "external login (link, session, vault)",
		"login, breaker open (503, no call)", "over provider p99", "## Login timing", "unknown address", "known address, wrong password",
		"Median difference"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}
