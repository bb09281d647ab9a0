package bench

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/bench/loadgen"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore/pg"
)

// AccountConcurrency are the concurrency levels of the account rows.
var AccountConcurrency = []int{1, 8}

// accountBenchUsers is how many accounts the registered-address rows go
// round: enough that a user stream holds a handful of requests, as a real
// one (the rate limits bound how many a stream gets), not thousands.
const accountBenchUsers = 5000

// accountUsers registers n accounts by appending their reservation and
// registration events directly (one PHC hash shared by all: no argon2id
// per account), and returns their addresses.
func accountUsers(ctx context.Context, rig *identityRig, n int) ([]string, error) {
	hash, err := rig.hasher.Hash(ctx, benchPassword)
	if err != nil {
		return nil, err
	}
	emails := make([]string, n)
	err = parallel(ctx, n, 8, func(ctx context.Context, i int) error {
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		email := fmt.Sprintf("account-bench-%d@example.test", i)
		res := &user.EmailReservation{}
		if err := res.Reserve(id, time.Now()); err != nil {
			return err
		}
		if _, err := rig.register.Reservations.Append(ctx, user.EmailReservationStream(rig.reservationKey, email), 0, benchMeta(i), res.Changes()); err != nil {
			return err
		}
		u, err := user.Register(id, email, "Bench", hash, time.Now())
		if err != nil {
			return err
		}
		if _, err := rig.register.Users.Append(ctx, user.StreamName(id), 0, benchMeta(i), u.Changes()); err != nil {
			return err
		}
		emails[i] = email
		return nil
	})
	return emails, err
}

// Account measures the anonymous link requests of issue 20 (password
// reset, verification resend) for a registered and an unknown address,
// interleaved so that both see the same load: their status and body are
// the same by construction (the HTTP tests hold that); this is what their
// timing tells an observer. A known address also appends its request to
// the user stream, which an unknown one cannot.
func Account(ctx context.Context, w io.Writer, store *pg.Store, cfg Config) error {
	cfg = cfg.withDefaults()
	rig, err := newIdentityRig(ctx, store)
	if err != nil {
		return fmt.Errorf("bench: account: %w", err)
	}
	emails, err := accountUsers(ctx, rig, accountBenchUsers)
	if err != nil {
		return fmt.Errorf("bench: account: %w", err)
	}
	fmt.Fprintln(w, "\n## Account security: anonymous link requests, registered and unknown address (PostgreSQL event store)")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\tconcurrency\tops\tops/s\tp50\tp99\tp50 known/unknown\t")
	rows := []struct {
		name string
		op   func(ctx context.Context, email string, meta commands.Meta) error
	}{
		{"password reset request", func(ctx context.Context, email string, meta commands.Meta) error {
			return rig.reset.Handle(ctx, commands.RequestPasswordReset{Email: email, Meta: meta})
		}},
		{"verification resend", func(ctx context.Context, email string, meta commands.Meta) error {
			return rig.resend.Handle(ctx, commands.RequestEmailVerification{Email: email, Meta: meta})
		}},
	}
	var next atomic.Uint64
	for _, row := range rows {
		for _, c := range AccountConcurrency {
			rs, err := loadgen.Interleaved(ctx, c, cfg.RowDuration, loadgen.Rounds(cfg.RowDuration), func(ctx context.Context, worker, i int) error {
				return row.op(ctx, emails[next.Add(1)%uint64(len(emails))], benchMeta(worker))
			}, func(ctx context.Context, worker, i int) error {
				return row.op(ctx, fmt.Sprintf("nobody-%d-%d@example.test", worker, i), benchMeta(worker))
			})
			if err != nil {
				return fmt.Errorf("bench: %s: %w", row.name, err)
			}
			known, unknown := rs[0], rs[1]
			fmt.Fprintf(tw, "%s, registered address\t%d\t%d\t%.0f\t%s\t%s\t%.2f\t\n", row.name, c, known.Ops, known.PerSecond(), ms(known.P50), ms(known.P99),
				float64(known.P50)/float64(unknown.P50))
			fmt.Fprintf(tw, "%s, unknown address\t%d\t%d\t%.0f\t%s\t%s\t\t\n", row.name, c, unknown.Ops, unknown.PerSecond(), ms(unknown.P50), ms(unknown.P99))
		}
	}
	return tw.Flush()
}
