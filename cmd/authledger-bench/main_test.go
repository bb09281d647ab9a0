package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/authledger/authledger/test/pgtest"
)

func runBench(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no database", nil, nil, "DATABASE_URL is required"},
		{"unknown section", map[string]string{"DATABASE_URL": "postgres://x"}, []string{"-sections", "eventstore,warp"}, `unknown section "warp"`},
		{"bad writers", map[string]string{"DATABASE_URL": "postgres://x"}, []string{"-writers", "1,zero"}, `"zero" is not a positive number`},
		{"stray argument", map[string]string{"DATABASE_URL": "postgres://x"}, []string{"now"}, `unexpected argument "now"`},
	} {
		code, _, errOut := runBench(t, tc.env, tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tc.name, code, errOut, exitUsage, tc.want)
		}
	}
	code, out, _ := runBench(t, nil, "-h")
	if code != exitOK || !strings.Contains(out, "usage: authledger-bench") {
		t.Errorf("-h: exit %d, %q", code, out)
	}
}

// The command runs a section end to end on a real PostgreSQL and prints
// its table; it says nothing about speed.
func TestEventStoreSection(t *testing.T) {
	t.Parallel()
	code, out, errOut := runBench(t, map[string]string{"DATABASE_URL": pgtest.BaseURL(t)},
		"-sections", "eventstore", "-duration", "100ms", "-writers", "1,2")
	t.Log("\n" + out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"p50", "p99"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
}
