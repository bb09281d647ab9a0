package eventstoretest

import (
	"testing"
)

// test is one rule of the port, checked against a fresh fixture.
type test struct {
	name string
	run  func(e *env)
}

// group is a set of tests that run in parallel with each other.
type group struct {
	name  string
	tests []test
}

// groups lists every rule the suite checks, except the concurrency test,
// which Run runs on its own.
func groups() []group {
	return []group{
		{"ExpectedRevision", expectedRevisionTests()},
		{"Idempotency", idempotencyTests()},
		{"ReadStream", readStreamTests()},
		{"Tombstone", tombstoneTests()},
		{"ReadAll", readAllTests()},
		{"Subscribe", subscribeTests()},
		{"Transaction", txTests()},
	}
}

// Run checks an adapter against the port. newFixture must return a store
// over an empty log each time it is called; every subtest calls it once.
// Groups run one after the other, the tests of a group in parallel; the
// concurrency test runs last, alone.
//
// Select parts with -run, e.g. -run 'Conformance/Subscribe/' or
// -run 'Conformance/Concurrency'.
func Run(t *testing.T, newFixture func(t *testing.T) Fixture) {
	t.Helper()
	for _, g := range groups() {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(setup(t, newFixture))
				})
			}
		})
	}
	t.Run("Concurrency", func(t *testing.T) {
		e := setup(t, newFixture)
		cfg := DefaultConcurrencyConfig()
		if testing.Short() {
			cfg.Duration /= 2
			cfg.MaxEvents /= 2
		}
		rep, err := Concurrency(e.ctx, e.f, cfg)
		t.Log(rep.String())
		if err != nil {
			t.Fatalf("Concurrency: %v", err)
		}
		if !rep.OK() {
			t.Fatalf("Concurrency: %d violations (first ones listed above)", rep.ViolationCount())
		}
		if e.f.Begin != nil && !rep.HeldCommitted {
			t.Errorf("the transaction held open did not commit, so the run did not test a late commit")
		}
		if rep.Restarts < 2 {
			t.Errorf("the subscriber was restarted %d times, want at least 2: the run was too short to test restarts", rep.Restarts)
		}
	})
}
