package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authledger/authledger/auth/external"
)

// ErrRefreshRejected marks a refresh the provider refused for good (the
// refresh token is no longer valid): the session is given up at once,
// without retries. A RefreshFunc wraps its error with it.
var ErrRefreshRejected = errors.New("vault: the provider rejected the refresh token")

// RefreshFunc exchanges a refresh token for new tokens. A new refresh
// token may or may not come back; when none does, the result must carry
// the old one (external.Client.Refresh does).
type RefreshFunc func(ctx context.Context, refreshToken string) (external.Tokens, error)

// ClientRefresh is the RefreshFunc of an external auth client: its 401 is
// ErrRefreshRejected, everything else a failure worth retrying.
func ClientRefresh(c *external.Client) RefreshFunc {
	return func(ctx context.Context, refreshToken string) (external.Tokens, error) {
		t, err := c.Refresh(ctx, refreshToken)
		if errors.Is(err, external.ErrInvalidCredentials) {
			return external.Tokens{}, fmt.Errorf("%w: %w", ErrRefreshRejected, err)
		}
		if err != nil {
			return external.Tokens{}, err
		}
		return *t, nil
	}
}

// GiveUpReason says why the refresher gave up a session's tokens.
type GiveUpReason string

// The reasons, stable words for an event's payload.
const (
	// GiveUpRejected: the provider refused the refresh token.
	GiveUpRejected GiveUpReason = "refresh_rejected"
	// GiveUpFailedRepeatedly: MaxFailures refreshes in a row failed.
	GiveUpFailedRepeatedly GiveUpReason = "refresh_failed_repeatedly"
	// GiveUpNoRefreshToken: the access token expired and there is no
	// refresh token to renew it with.
	GiveUpNoRefreshToken GiveUpReason = "no_refresh_token"
)

// GiveUp is reported to RefresherConfig.OnGiveUp.
type GiveUp struct {
	SessionID uuid.UUID
	UserID    uuid.UUID
	Reason    GiveUpReason
	// Failures is the consecutive failed refreshes; Err the last failure.
	Failures int
	Err      error
	// Record is what the log may record of the tokens given up.
	Record Record
}

// RefresherConfig configures a Refresher. Zero values take the defaults.
type RefresherConfig struct {
	// Buffer is how long before expiry tokens are renewed
	// (AUTHLEDGER_TOKEN_REFRESH_BUFFER; external.Config.RefreshBuffer).
	// Required.
	Buffer time.Duration
	// OnGiveUp is told when a session's tokens cannot be renewed; it ends
	// the session and records why. When it returns nil the tokens are
	// deleted; when it fails, the session is reported again on a later
	// pass. Required.
	OnGiveUp func(context.Context, GiveUp) error
	// OnRenewed, when set, is told of each renewal after it is stored (to
	// record the new fingerprints and expiry in the log). Its error is
	// logged and returned by the pass; the renewal stands.
	OnRenewed func(context.Context, Record) error
	// Interval is the pause between passes that found nothing more to do
	// (default 15s).
	Interval time.Duration
	// Batch is how many sessions a pass claims at once (default 10).
	Batch int
	// RefreshTimeout bounds each refresh call (default 20s). Batch ×
	// RefreshTimeout must fit in the vault's Lease.
	RefreshTimeout time.Duration
	// MaxFailures is how many failed refreshes in a row give a session up
	// (default 5). The retries wait RetryBackoff, doubled per failure up
	// to MaxBackoff (defaults 30s and 10m).
	MaxFailures  int
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	// Logger receives failures (slog.Default() when nil); never a token.
	Logger *slog.Logger
}

// Refresher renews the vault's due tokens. Run it in every instance: the
// vault's claims give each session to one of them at a time. It is a
// prometheus.Collector (refresh outcomes).
type Refresher struct {
	v       *Vault
	refresh RefreshFunc
	cfg     RefresherConfig
	results *prometheus.CounterVec
}

// NewRefresher returns a Refresher of v's tokens through refresh.
func NewRefresher(v *Vault, refresh RefreshFunc, cfg RefresherConfig) (*Refresher, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 15 * time.Second
	}
	if cfg.Batch == 0 {
		cfg.Batch = 10
	}
	if cfg.RefreshTimeout == 0 {
		cfg.RefreshTimeout = 20 * time.Second
	}
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = 5
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = 30 * time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var errs []error
	if v == nil || refresh == nil || cfg.OnGiveUp == nil {
		errs = append(errs, errors.New("vault: NewRefresher needs the vault, a refresh function and OnGiveUp"))
	}
	if cfg.Buffer <= 0 {
		errs = append(errs, fmt.Errorf("vault: refresh Buffer %s must be positive (AUTHLEDGER_TOKEN_REFRESH_BUFFER)", cfg.Buffer))
	}
	if cfg.Batch < 0 || cfg.Interval < 0 || cfg.RefreshTimeout < 0 || cfg.MaxFailures < 0 || cfg.RetryBackoff < 0 || cfg.MaxBackoff < cfg.RetryBackoff {
		errs = append(errs, errors.New("vault: refresher Batch, Interval, RefreshTimeout, MaxFailures and backoffs must be positive, MaxBackoff at least RetryBackoff"))
	}
	if v != nil && time.Duration(cfg.Batch)*cfg.RefreshTimeout >= v.Lease() {
		errs = append(errs, fmt.Errorf("vault: a batch of %d refreshes of up to %s each could outlast the claims' lease (%s): lower Batch or raise the vault's Lease", cfg.Batch, cfg.RefreshTimeout, v.Lease()))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Refresher{v: v, refresh: refresh, cfg: cfg, results: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "authledger", Subsystem: "external_auth", Name: "token_refreshes_total",
		Help: "Refreshes of the provider's tokens in the vault by outcome: renewed, failed (to be retried), gave_up (the session ends), lost (another instance or a logout took the row), deferred (no refresh token; looked at again when the access token expires).",
	}, []string{"outcome"})}, nil
}

// Describe implements prometheus.Collector.
func (r *Refresher) Describe(ch chan<- *prometheus.Desc) { r.results.Describe(ch) }

// Collect implements prometheus.Collector.
func (r *Refresher) Collect(ch chan<- prometheus.Metric) { r.results.Collect(ch) }

// Report counts what a pass did.
type Report struct {
	Renewed  int
	Failed   int
	GaveUp   int
	Lost     int
	Deferred int // no refresh token, the access token still valid
}

// Run makes passes until ctx ends: at once again while a pass filled its
// batch, after Interval otherwise.
func (r *Refresher) Run(ctx context.Context) error {
	for {
		rep, err := r.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("vault: refresh pass", "err", err)
		}
		wait := r.cfg.Interval
		if err == nil && rep.Renewed+rep.Failed+rep.GaveUp+rep.Lost+rep.Deferred >= r.cfg.Batch {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// RunOnce claims one batch of due sessions and handles each.
func (r *Refresher) RunOnce(ctx context.Context) (Report, error) {
	var rep Report
	claims, dueErr := r.v.Due(ctx, r.cfg.Buffer, r.cfg.Batch)
	if dueErr != nil && claims == nil {
		return rep, dueErr
	}
	var errs []error
	if dueErr != nil {
		errs = append(errs, dueErr)
	}
	for _, c := range claims {
		outcome, err := r.handle(ctx, c)
		r.results.WithLabelValues(outcome).Inc()
		switch outcome {
		case "renewed":
			rep.Renewed++
		case "failed":
			rep.Failed++
		case "gave_up":
			rep.GaveUp++
		case "lost":
			rep.Lost++
		case "deferred":
			rep.Deferred++
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

// handle renews one claimed session, or records its failure, or gives it
// up; it returns the outcome's metric label.
func (r *Refresher) handle(ctx context.Context, c Claim) (string, error) {
	now := r.v.now()
	log := r.cfg.Logger.With("session_id", c.SessionID, "user_id", c.UserID)
	if c.Tokens.RefreshToken == "" {
		if now.Before(c.ExpiresAt) {
			// Nothing to renew with; the access token still holds. Look
			// again when it expires.
			return "deferred", r.lostIsFine(r.v.Release(ctx, c, c.ExpiresAt))
		}
		return r.giveUp(ctx, c, GiveUp{Reason: GiveUpNoRefreshToken, Failures: c.Failures}, true)
	}
	if c.Failures >= r.cfg.MaxFailures {
		// Given up before, but OnGiveUp failed: report again.
		return r.giveUp(ctx, c, GiveUp{Reason: GiveUpFailedRepeatedly, Failures: c.Failures, Err: errors.New(c.LastError)}, true)
	}

	rctx, cancel := context.WithTimeout(ctx, r.cfg.RefreshTimeout)
	t, err := r.refresh(rctx, c.Tokens.RefreshToken)
	cancel()
	if err == nil {
		if t.RefreshToken == "" {
			t.RefreshToken = c.Tokens.RefreshToken
		}
		rec, err := r.v.Renew(ctx, c, t)
		if errors.Is(err, ErrClaimLost) {
			return "lost", nil
		}
		if err != nil {
			return "failed", err
		}
		log.Debug("vault: tokens renewed", "access", rec.AccessFingerprint, "expires_at", rec.ExpiresAt)
		if r.cfg.OnRenewed != nil {
			if err := r.cfg.OnRenewed(ctx, rec); err != nil {
				return "renewed", fmt.Errorf("vault: OnRenewed %s: %w", c.SessionID, err)
			}
		}
		return "renewed", nil
	}
	if errors.Is(err, ErrRefreshRejected) {
		return r.giveUp(ctx, c, GiveUp{Reason: GiveUpRejected, Failures: c.Failures + 1, Err: err}, true)
	}
	backoff := r.cfg.RetryBackoff << min(c.Failures, 20)
	if backoff <= 0 || backoff > r.cfg.MaxBackoff {
		backoff = r.cfg.MaxBackoff
	}
	retryAt := now.Add(backoff)
	failures, ferr := r.v.Fail(ctx, c, err, retryAt)
	if errors.Is(ferr, ErrClaimLost) {
		return "lost", nil
	}
	if ferr != nil {
		return "failed", ferr
	}
	log.Warn("vault: refreshing the provider's tokens failed", "failures", failures, "retry_at", retryAt, "err", err)
	if failures >= r.cfg.MaxFailures {
		return r.giveUp(ctx, c, GiveUp{Reason: GiveUpFailedRepeatedly, Failures: failures, Err: err}, false)
	}
	return "failed", nil
}

// giveUp reports the session and, once OnGiveUp has taken it, deletes
// its tokens. When OnGiveUp fails, a claim still held is released until
// RetryBackoff from now, and the session is reported again on a later
// pass (Fail already released the claim and set that time).
func (r *Refresher) giveUp(ctx context.Context, c Claim, g GiveUp, claimHeld bool) (string, error) {
	g.SessionID, g.UserID, g.Record = c.SessionID, c.UserID, c.Record
	if err := r.cfg.OnGiveUp(ctx, g); err != nil {
		if claimHeld {
			_ = r.v.Release(ctx, c, r.v.now().Add(r.cfg.RetryBackoff))
		}
		return "failed", fmt.Errorf("vault: OnGiveUp %s: %w", c.SessionID, err)
	}
	r.cfg.Logger.Warn("vault: gave up the provider's tokens", "session_id", c.SessionID, "reason", string(g.Reason), "failures", g.Failures)
	if _, err := r.v.Delete(ctx, c.SessionID); err != nil {
		return "gave_up", err
	}
	return "gave_up", nil
}

// lostIsFine treats a lost claim as nothing to report.
func (r *Refresher) lostIsFine(err error) error {
	if errors.Is(err, ErrClaimLost) {
		return nil
	}
	return err
}
