package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	authmfa "github.com/authledger/authledger/auth/mfa"
	"github.com/authledger/authledger/bench/loadgen"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/mfa"
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
	emails, _, err := accountUsersNamed(ctx, rig, n, "account-bench-%d@example.test")
	return emails, err
}

// accountUsersNamed is accountUsers with the addresses' pattern; it
// returns the user ids too.
func accountUsersNamed(ctx context.Context, rig *identityRig, n int, pattern string) ([]string, []uuid.UUID, error) {
	hash, err := rig.hasher.Hash(ctx, benchPassword)
	if err != nil {
		return nil, nil, err
	}
	emails, ids := make([]string, n), make([]uuid.UUID, n)
	err = parallel(ctx, n, 8, func(ctx context.Context, i int) error {
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		email := fmt.Sprintf(pattern, i)
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
		emails[i], ids[i] = email, id
		return nil
	})
	return emails, ids, err
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
	if err := tw.Flush(); err != nil {
		return err
	}
	return accountLogins(ctx, w, rig, cfg)
}

// accountTOTPUsers is how many users with an authenticator app the TOTP
// login rows go round: a TOTP step works once per user, so each login
// needs a user whose current step is unspent.
const accountTOTPUsers = 3000

// accountLogins measures a password login beside a login with TOTP (the
// password step answering the mfa_token, then the verify step), both with
// second factors on (a password-only login reads the empty second-factor
// stream too), interleaved so that both see the same load.
func accountLogins(ctx context.Context, w io.Writer, rig *identityRig, cfg Config) error {
	plain, _, err := accountUsersNamed(ctx, rig, 100, "login-bench-%d@example.test")
	if err != nil {
		return fmt.Errorf("bench: account logins: %w", err)
	}
	totpUsers, secrets, err := accountTOTP(ctx, rig, accountTOTPUsers)
	if err != nil {
		return fmt.Errorf("bench: account logins: %w", err)
	}
	fmt.Fprintln(w, "\n## Account security: login, password only and with TOTP (two steps), second factors on (PostgreSQL event store)")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\tconcurrency\tops\tops/s\tp50\tp99\t")
	var nextPlain, nextTOTP atomic.Uint64
	for _, c := range AccountConcurrency {
		rs, err := loadgen.Interleaved(ctx, c, cfg.RowDuration, loadgen.Rounds(cfg.RowDuration), func(ctx context.Context, worker, _ int) error {
			_, err := rig.login.Handle(ctx, commands.Login{Email: plain[nextPlain.Add(1)%uint64(len(plain))], Password: benchPassword, Meta: benchMeta(worker)})
			return err
		}, func(ctx context.Context, worker, _ int) error {
			i := nextTOTP.Add(1)
			if i >= uint64(len(totpUsers)) {
				return errors.New("bench: every TOTP user logged in once this step; raise accountTOTPUsers")
			}
			_, err := rig.login.Handle(ctx, commands.Login{Email: totpUsers[i], Password: benchPassword, Meta: benchMeta(worker)})
			var mr *commands.MFARequiredError
			if !errors.As(err, &mr) {
				return fmt.Errorf("bench: the password step answered %v, not mfa-required", err)
			}
			code, err := authmfa.TOTPCode(secrets[i], time.Now())
			if err != nil {
				return err
			}
			_, err = rig.login.VerifySecondFactor(ctx, commands.VerifySecondFactor{Token: mr.Token, Method: mfa.KindTOTP, Code: code, Meta: benchMeta(worker)})
			return err
		})
		if err != nil {
			return fmt.Errorf("bench: account logins: %w", err)
		}
		fmt.Fprintf(tw, "password login\t%d\t%d\t%.0f\t%s\t%s\t\n", c, rs[0].Ops, rs[0].PerSecond(), ms(rs[0].P50), ms(rs[0].P99))
		fmt.Fprintf(tw, "login with TOTP (password, then code)\t%d\t%d\t%.0f\t%s\t%s\t\n", c, rs[1].Ops, rs[1].PerSecond(), ms(rs[1].P50), ms(rs[1].P99))
	}
	return tw.Flush()
}

// accountTOTP registers n users with a confirmed authenticator app: the
// secret sealed in its table and the app's events appended directly (the
// confirmation's step long past, so that every current step is unspent).
func accountTOTP(ctx context.Context, rig *identityRig, n int) ([]string, []string, error) {
	emails, ids, err := accountUsersNamed(ctx, rig, n, "totp-bench-%d@example.test")
	if err != nil {
		return nil, nil, err
	}
	secrets := make([]string, n)
	err = parallel(ctx, n, 8, func(ctx context.Context, i int) error {
		u := ids[i]
		en, err := authmfa.NewTOTP("authledger-bench", emails[i])
		if err != nil {
			return err
		}
		method, err := uuid.NewV7()
		if err != nil {
			return err
		}
		if err := rig.secrets.Put(ctx, method, u, en.Secret); err != nil {
			return err
		}
		f := &mfa.Factors{}
		if err := f.AddTOTP(u, method, time.Now()); err != nil {
			return err
		}
		if err := f.ConfirmTOTP(method, 1, time.Now()); err != nil {
			return err
		}
		if _, err := rig.mfa.Factors.Append(ctx, mfa.StreamName(u), 0, benchMeta(i), f.Changes()); err != nil {
			return err
		}
		secrets[i] = en.Secret
		return nil
	})
	return emails, secrets, err
}
