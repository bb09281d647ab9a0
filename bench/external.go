package bench

// external.go is the `external` section (issue 18): logins through the
// external auth API against the test provider (test/extauthserver, over
// loopback HTTP, with a fixed latency), the fast failure while the
// provider's circuit breaker is open, and the login timing row (item 11):
// how long an unknown address and a known one with a wrong password take
// to be refused.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/auth/vault"
	"github.com/authledger/authledger/bench/loadgen"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/test/extauthserver"
)

// Goals of issue 18, printed beside the rows (never asserted).
const (
	// ProviderLatency is the test provider's fixed latency on every call.
	ProviderLatency = 50 * time.Millisecond
	// externalOverheadGoal bounds an external login's p99 over the
	// provider's own (the client alone, same run).
	externalOverheadGoal = 5 * time.Millisecond
	// fastFailGoal bounds a login's p99 while the breaker is open.
	fastFailGoal = 5 * time.Millisecond
	// timingGapGoal bounds the gap between the medians of an unknown
	// address and a wrong password.
	timingGapGoal = 500 * time.Microsecond
)

// externalConcurrency is the login workers of the external rows.
const externalConcurrency = 8

// runT is what the test provider needs of its runner (extauthserver.T):
// cleanups run by External, errors collected, a fatal one a panic that
// External recovers.
type runT struct {
	mu       sync.Mutex
	cleanups []func()
	errs     []error
}

type fatal struct{ err error }

func (t *runT) Helper()          {}
func (t *runT) Cleanup(f func()) { t.mu.Lock(); t.cleanups = append(t.cleanups, f); t.mu.Unlock() }
func (t *runT) Errorf(f string, a ...any) {
	t.mu.Lock()
	t.errs = append(t.errs, fmt.Errorf(f, a...))
	t.mu.Unlock()
}
func (t *runT) Fatalf(f string, a ...any) { panic(fatal{fmt.Errorf(f, a...)}) }

func (t *runT) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	return errors.Join(t.errs...)
}

// External prints the external login table and the login timing table.
func External(ctx context.Context, w io.Writer, store *pg.Store, cfg Config) (err error) {
	cfg = cfg.withDefaults()
	rt := &runT{}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("bench: external: %w", f.err)
		}
		err = errors.Join(err, rt.close())
	}()
	rig, err := newIdentityRig(ctx, store)
	if err != nil {
		return fmt.Errorf("bench: external: %w", err)
	}

	users := make([]extauthserver.User, externalConcurrency)
	for i := range users {
		users[i] = extauthserver.User{ID: fmt.Sprintf("ext-bench-%d", i), Email: fmt.Sprintf("ext-bench-%d@example.test", i),
			Name: fmt.Sprintf("External %d", i), Password: benchPassword}
	}
	p := extauthserver.Start(rt, extauthserver.Config{Plain: true, Users: users})
	ccfg := p.ClientConfig()
	// The breaker stays open through its row once it has opened.
	ccfg.BreakerDelay = time.Minute
	ccfg.Logger = slog.New(slog.DiscardHandler)
	client, err := external.NewClient(ccfg)
	if err != nil {
		return fmt.Errorf("bench: external: %w", err)
	}
	defer client.Close()
	validator, err := external.NewTokenValidator(ccfg)
	if err != nil {
		return fmt.Errorf("bench: external: %w", err)
	}
	vlt, err := vault.New(vault.Config{Pool: store.Pool(), MasterKey: rig.master})
	if err != nil {
		return fmt.Errorf("bench: external: %w", err)
	}
	ih, err := commands.NewIdentityHandlers(store, rig.reg, commands.IdentityConfig{
		Hasher: rig.hasher, Issuer: rig.issuer, ReservationKey: rig.reservationKey,
		// The breaker row's refusals would each log a warning.
		External: &commands.ExternalConfig{Provider: client, Validator: validator, Vault: vlt, ProviderName: p.Issuer, Provision: true,
			Logger: slog.New(slog.DiscardHandler)},
	})
	if err != nil {
		return fmt.Errorf("bench: external: %w", err)
	}
	defer ih.Login.Drain(context.WithoutCancel(ctx))
	login := func(ctx context.Context, worker int, password string) error {
		_, err := ih.Login.Handle(ctx, commands.Login{Email: users[worker].Email, Password: password, Meta: benchMeta(worker)})
		return err
	}
	// Each user's first login provisions its account: not what the rows
	// measure.
	for i := range users {
		if err := login(ctx, i, benchPassword); err != nil {
			return fmt.Errorf("bench: external: first login: %w", err)
		}
	}

	p.SetFault(extauthserver.Fault{Latency: ProviderLatency})
	rs, err := loadgen.Interleaved(ctx, externalConcurrency, cfg.RowDuration, loadgen.Rounds(cfg.RowDuration),
		func(ctx context.Context, worker, _ int) error {
			_, err := client.Login(ctx, users[worker].Email, benchPassword)
			return err
		},
		func(ctx context.Context, worker, _ int) error { return login(ctx, worker, benchPassword) },
	)
	if err != nil {
		return fmt.Errorf("bench: external: %w", err)
	}
	provider, full := rs[0], rs[1]

	// The provider fails until the breaker opens; then every login is
	// refused without a call.
	p.SetFault(extauthserver.Fault{Status: 503})
	for client.BreakerState() != external.BreakerOpen {
		if err := login(ctx, 0, benchPassword); err == nil {
			return errors.New("bench: external: a login succeeded while the provider answered 503")
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	hits := p.Hits(extauthserver.Login)
	open, err := loadgen.Run(ctx, externalConcurrency, cfg.RowDuration, func(ctx context.Context, worker, _ int) error {
		if err := login(ctx, worker, benchPassword); !errors.Is(err, external.ErrUnavailable) {
			return fmt.Errorf("with the breaker open, a login answered %v", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bench: external: breaker open: %w", err)
	}
	if n := p.Hits(extauthserver.Login) - hits; n > 0 {
		return fmt.Errorf("bench: external: %d logins reached the provider with the breaker open", n)
	}
	p.SetFault(extauthserver.Fault{})

	fmt.Fprintf(w, "\n## External login (commands.LoginHandler against the test provider over loopback HTTP, %s latency per call; %s tokens, validated; vault on PostgreSQL)\n",
		ProviderLatency, "RS256")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\tconcurrency\tops\tops/s\tp50\tp99\tover provider p99\tgoal\t")
	fmt.Fprintf(tw, "provider alone (external.Client.Login)\t%d\t%d\t%.0f\t%s\t%s\t\t\t\n",
		externalConcurrency, provider.Ops, provider.PerSecond(), ms(provider.P50), ms(provider.P99))
	over := full.P99 - provider.P99
	fmt.Fprintf(tw, "external login (link, session, vault)\t%d\t%d\t%.0f\t%s\t%s\t%s\t< %s: %s\t\n",
		externalConcurrency, full.Ops, full.PerSecond(), ms(full.P50), ms(full.P99), ms(over), ms(externalOverheadGoal), verdictOf(over < externalOverheadGoal))
	fmt.Fprintf(tw, "login, breaker open (503, no call)\t%d\t%d\t%.0f\t%s\t%s\t\tp99 < %s: %s\t\n",
		externalConcurrency, open.Ops, open.PerSecond(), ms(open.P50), ms(open.P99), ms(fastFailGoal), verdictOf(open.P99 < fastFailGoal))
	if err := tw.Flush(); err != nil {
		return err
	}
	return loginTiming(ctx, w, rig, cfg.TimingTries)
}

// loginTiming prints the medians of tries refusals of unknown addresses
// and as many of known addresses with a wrong password, taken
// in turn on the local path, and their difference. Every try comes from an
// address and a source of its own, so that the throttle never delays one.
func loginTiming(ctx context.Context, w io.Writer, rig *identityRig, tries int) error {
	const perUser = 4 // wrong passwords per account: under every threshold
	if err := rig.registerUsers(ctx, (tries+perUser-1)/perUser); err != nil {
		return fmt.Errorf("bench: login timing: %w", err)
	}
	unknown, wrong := make([]time.Duration, 0, tries), make([]time.Duration, 0, tries)
	for i := range tries {
		meta := func(kind int) commands.Meta {
			return commands.AnonymousMeta(fmt.Sprintf("timing-%d-%d", kind, i),
				fmt.Sprintf("198.51.%d.%d", kind*100+i/250, i%250+1), "authledger-bench/1.0")
		}
		for _, try := range []struct {
			into  *[]time.Duration
			login commands.Login
		}{
			{&unknown, commands.Login{Email: fmt.Sprintf("nobody-%d@example.test", i), Password: benchPassword, Meta: meta(0)}},
			{&wrong, commands.Login{Email: rig.emails[i/perUser], Password: "not the password", Meta: meta(1)}},
		} {
			start := time.Now()
			_, err := rig.login.Handle(ctx, try.login)
			d := time.Since(start)
			if !errors.Is(err, commands.ErrInvalidCredentials) {
				return fmt.Errorf("bench: login timing: %s answered %v, want invalid credentials", try.login.Email, err)
			}
			*try.into = append(*try.into, d)
		}
	}
	rig.login.Drain(context.WithoutCancel(ctx))
	u, k := loadgen.Summarise(unknown, 0), loadgen.Summarise(wrong, 0)
	gap := k.P50 - u.P50
	fmt.Fprintf(w, "\n## Login timing (local path, %d refusals of each, in turn; argon2id as in serve)\n", tries)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\ttries\tp50\tp99\t")
	fmt.Fprintf(tw, "unknown address\t%d\t%s\t%s\t\n", u.Ops, ms(u.P50), ms(u.P99))
	fmt.Fprintf(tw, "known address, wrong password\t%d\t%s\t%s\t\n", k.Ops, ms(k.P50), ms(k.P99))
	if err := tw.Flush(); err != nil {
		return err
	}
	abs := max(gap, -gap)
	fmt.Fprintf(w, "\nMedian difference (wrong password minus unknown): %s (goal |difference| < %s: %s)\n",
		ms(gap), ms(timingGapGoal), verdictOf(abs < timingGapGoal))
	return nil
}

func verdictOf(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}
