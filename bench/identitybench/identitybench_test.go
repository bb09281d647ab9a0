package identitybench_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/bench/identitybench"
	"github.com/authledger/authledger/projections/projtest"
)

// The run completes with every request answered 200 and prints both rows;
// the figures themselves are never asserted.
func TestRunPrintsBothRows(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := projtest.New(t)
	var out bytes.Buffer
	res, err := identitybench.Run(ctx, identitybench.Config{Store: env.Store, Pool: env.Pool, Users: 20, Rate: 50, Concurrency: 2, Duration: time.Second}, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if res.Steady.Requests != 50 || res.Steady.Rate != 50 || res.Max.Requests == 0 || res.Max.Concurrency != 2 {
		t.Fatalf("result = %+v", res)
	}
	for _, want := range []string{"GET /v1/me, max", "GET /v1/me, steady", "p99 < 10.00 ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
}

func TestRunNeedsAStore(t *testing.T) {
	t.Parallel()
	if _, err := identitybench.Run(context.Background(), identitybench.Config{}, &bytes.Buffer{}); err == nil {
		t.Fatal("a config without store and pool was accepted")
	}
}
