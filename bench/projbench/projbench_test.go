package projbench_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/bench/projbench"
	"github.com/authledger/authledger/projections/projtest"
)

// TestRun runs the benchmark small (the figures are printed, never
// asserted). AUTHLEDGER_PROJBENCH_EVENTS=200000 runs it at full size.
func TestRun(t *testing.T) {
	t.Parallel()
	n, rate, dur := 3000, 100, 2*time.Second
	if v := os.Getenv("AUTHLEDGER_PROJBENCH_EVENTS"); v != "" {
		n, _ = strconv.Atoi(v)
		rate, dur = 500, 20*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	env := projtest.New(t)
	var out strings.Builder
	res, err := projbench.Run(ctx, projbench.Config{Store: env.Store, Pool: env.Pool, Events: n, Rate: rate, Duration: dur}, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if res.RebuildEvents != int64(n) || res.Samples == 0 {
		t.Fatalf("result %+v", res)
	}
}
