package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/auth/mailtoken"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/notify/mail"
	"github.com/authledger/authledger/notify/sms"
)

// DeliveryConfig configures the deliverer.
type DeliveryConfig struct {
	Pool  *pgxpool.Pool
	Users *commands.Repository[*user.User]
	Mail  mail.Sender
	// SMS sends the second factors' text messages; nil dead-letters them
	// (no AUTHLEDGER_SMS_* configured).
	SMS    sms.Sender
	Minter *mailtoken.Minter
	// Templates render the messages.
	Templates *mail.Templates
	// PublicURL is the base of the links (PublicURL/verify-email#token=...).
	PublicURL string
	// MaxAttempts is how many sends a message gets before it is dead
	// (5 when 0).
	MaxAttempts int
	// Backoff is the wait after the first failure, doubled after each
	// (30s when 0), at most MaxBackoff (1h when 0).
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Poll is how often due rows are looked for (1s when 0).
	Poll time.Duration
	// Lease is how long a send may take before another deliverer may take
	// the row (2m when 0; longer than the SMTP timeout).
	Lease time.Duration
	// Now is the clock (nil: time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Validate reports every problem at once.
func (c DeliveryConfig) Validate() error {
	var errs []error
	if c.Pool == nil || c.Users == nil || c.Mail == nil || c.Minter == nil || c.Templates == nil {
		errs = append(errs, errors.New("outbox: the deliverer needs a pool, the user repository, a mail sender, a token minter and templates"))
	}
	if c.PublicURL == "" {
		errs = append(errs, errors.New("outbox: the deliverer needs the public URL"))
	}
	if c.MaxAttempts < 0 || c.Backoff < 0 || c.MaxBackoff < 0 {
		errs = append(errs, errors.New("outbox: attempts and backoffs must not be negative"))
	}
	return errors.Join(errs...)
}

// Deliverer sends the outbox's due messages.
type Deliverer struct{ c DeliveryConfig }

// NewDeliverer validates c and fills in its defaults.
func NewDeliverer(c DeliveryConfig) (*Deliverer, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.Backoff == 0 {
		c.Backoff = 30 * time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = time.Hour
	}
	if c.Poll == 0 {
		c.Poll = time.Second
	}
	if c.Lease == 0 {
		c.Lease = 2 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	return &Deliverer{c: c}, nil
}

// Run delivers until ctx ends. A database outage is logged and waited
// out; it never stops the loop.
func (d *Deliverer) Run(ctx context.Context) error {
	t := time.NewTicker(d.c.Poll)
	defer t.Stop()
	for {
		if _, err := d.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			d.c.Logger.Warn("outbox: delivery round failed; retrying", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// leased is a row this deliverer holds.
type leased struct {
	eventID  uuid.UUID
	kind     string
	userID   uuid.UUID
	tokenID  *uuid.UUID
	email    *string
	reason   *string
	expires  *time.Time
	attempts int
}

// DeliverDue sends the messages due now (at most 20), and returns how
// many it handled.
func (d *Deliverer) DeliverDue(ctx context.Context) (int, error) {
	now := d.c.Now().UTC()
	rows, err := d.c.Pool.Query(ctx, `UPDATE `+Table+` SET lease_until = $2, attempts = attempts + 1
WHERE event_id IN (SELECT event_id FROM `+Table+`
	WHERE state = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
	ORDER BY next_attempt_at LIMIT 20 FOR UPDATE SKIP LOCKED)
RETURNING event_id, kind, user_id, token_id, email, reason, expires_at, attempts`, now, now.Add(d.c.Lease))
	if err != nil {
		return 0, fmt.Errorf("outbox: lease: %w", err)
	}
	due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (leased, error) {
		var l leased
		err := r.Scan(&l.eventID, &l.kind, &l.userID, &l.tokenID, &l.email, &l.reason, &l.expires, &l.attempts)
		return l, err
	})
	if err != nil {
		return 0, fmt.Errorf("outbox: lease: %w", err)
	}
	for _, l := range due {
		sendErr := d.send(ctx, l, now)
		if err := d.settle(ctx, l, sendErr); err != nil {
			return 0, err
		}
	}
	return len(due), nil
}

// errExpired: the link expired before it could be sent.
var errExpired = &mail.PermanentError{Err: errors.New("outbox: the link expired before it was delivered")}

func (d *Deliverer) send(ctx context.Context, l leased, now time.Time) error {
	if l.expires != nil && !now.Before(*l.expires) {
		return errExpired
	}
	u, err := d.c.Users.Load(ctx, user.StreamName(l.userID))
	if err != nil {
		return err
	}
	if !u.Registered() {
		return &mail.PermanentError{Err: errors.New("outbox: no such user")}
	}
	if l.kind == KindMFASMS {
		if d.c.SMS == nil {
			return &mail.PermanentError{Err: errors.New("outbox: no SMS sender is configured (AUTHLEDGER_SMS_*)")}
		}
		code := d.c.Minter.Mint(mailtoken.MFACode, l.userID, *l.tokenID).Code()
		err := d.c.SMS.Send(ctx, *l.email, "Your sign-in code is "+code+". It expires in 10 minutes. Do not share it.")
		var refused *sms.APIError
		if errors.As(err, &refused) && refused.Permanent() {
			return &mail.PermanentError{Err: err} // a number the provider refuses: no retry helps
		}
		return err
	}
	data := mail.Data{DisplayName: u.DisplayName(), Email: u.Email(), PublicURL: d.c.PublicURL}
	name := l.kind
	switch l.kind {
	case KindVerifyEmail:
		tok := d.c.Minter.Mint(mailtoken.EmailVerification, l.userID, *l.tokenID).Encode()
		data.Token, data.Link, data.ExpiresIn = tok, d.c.PublicURL+"/verify-email#token="+tok, "24 hours"
		if *l.email != u.Email() {
			// An address change: the link goes to the new address.
			name, data.Email = mail.TemplateChangeEmail, *l.email
		}
	case KindPasswordReset:
		tok := d.c.Minter.Mint(mailtoken.PasswordReset, l.userID, *l.tokenID).Encode()
		data.Token, data.Link, data.ExpiresIn = tok, d.c.PublicURL+"/reset-password#token="+tok, "30 minutes"
	case KindPasswordChanged:
		data.Reason = *l.reason
	case KindEmailChanged:
		data.Email, data.NewEmail = *l.email, *l.reason
	case KindMFACode:
		// Derived again from the code id: in no event and no table.
		data.Code = d.c.Minter.Mint(mailtoken.MFACode, l.userID, *l.tokenID).Code()
		data.Email, data.ExpiresIn = *l.email, "10 minutes"
	}
	m, err := d.c.Templates.Render(name, data)
	if err != nil {
		return &mail.PermanentError{Err: err}
	}
	m.ID = l.eventID.String()
	return d.c.Mail.Send(ctx, m)
}

// settle records a send's outcome on the row it leased.
func (d *Deliverer) settle(ctx context.Context, l leased, sendErr error) error {
	now := d.c.Now().UTC()
	var err error
	var perm *mail.PermanentError
	switch {
	case sendErr == nil:
		_, err = d.c.Pool.Exec(ctx, `UPDATE `+Table+` SET state = 'sent', sent_at = $2, lease_until = NULL, last_error = NULL WHERE event_id = $1`, l.eventID, now)
	case errors.As(sendErr, &perm) || l.attempts >= d.c.MaxAttempts:
		d.c.Logger.Error("outbox: message dead-lettered", slog.String("event_id", l.eventID.String()), slog.String("kind", l.kind),
			slog.Int("attempts", l.attempts), slog.String("error", sendErr.Error()))
		_, err = d.c.Pool.Exec(ctx, `UPDATE `+Table+` SET state = 'dead', lease_until = NULL, last_error = $2 WHERE event_id = $1`, l.eventID, sendErr.Error())
	default:
		wait := d.c.Backoff << min(l.attempts-1, 20)
		if wait > d.c.MaxBackoff || wait <= 0 {
			wait = d.c.MaxBackoff
		}
		d.c.Logger.Warn("outbox: send failed; will retry", slog.String("event_id", l.eventID.String()), slog.String("kind", l.kind),
			slog.Int("attempts", l.attempts), slog.Duration("retry_in", wait), slog.String("error", sendErr.Error()))
		_, err = d.c.Pool.Exec(ctx, `UPDATE `+Table+` SET next_attempt_at = $2, lease_until = NULL, last_error = $3 WHERE event_id = $1`,
			l.eventID, now.Add(wait), sendErr.Error())
	}
	if err != nil {
		return fmt.Errorf("outbox: settle %s: %w", l.eventID, err)
	}
	return nil
}
