// Package projections lists authledger's read models and offers the
// operations the server and the CLI run on them: a live Runner, Status,
// Rebuild. The machinery is in projections/projector; each read model lives in
// its own subpackage (projections/audit, ...).
package projections

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/audit"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/taskviews"
	"github.com/authledger/authledger/projections/userviews"
)

// Builtin returns the read models every server runs, the audit trail
// chained under auditKey (derived from the master key; see audit.New). A
// projection added here is set up (generation 1) and caught up from the
// start of the log by the next runner start. Without a key the audit trail
// still names its tables (for Status and Names) but applies nothing.
func Builtin(auditKey []byte) []projector.Projection {
	return []projector.Projection{audit.New(auditKey), userviews.NewProfiles(), userviews.NewSessions(), taskviews.New(),
		userviews.NewExternalIdentities(), userviews.NewAccountStates(), userviews.NewEmailVerifications(), userviews.NewPrivacy()}
}

// Config is projector.Config; Projections defaults to Builtin(nil), whose
// audit trail fails for want of its key: set Projections.
type Config = projector.Config

// NewRunner returns the live runner of the built-in projections (or of
// cfg.Projections when set). Run it with Runner.Run(ctx); plug
// Runner.Ready into /readyz; give projector.NewWaiter(pool, runner, 0) to
// the readapi consistency middleware.
func NewRunner(cfg Config) (*projector.Runner, error) {
	if cfg.Projections == nil {
		cfg.Projections = Builtin(nil)
	}
	return projector.NewRunner(cfg)
}

// Status reports every built-in projection's position, lag and state
// (`authledger projections status`).
func Status(ctx context.Context, pool *pgxpool.Pool, store eventstore.Store) ([]projector.ProjectionStatus, error) {
	return projector.Status(ctx, pool, store, Builtin(nil)...)
}

// Rebuild rebuilds the built-in projection called name without downtime
// (`authledger projections rebuild NAME`); progress, when not nil, receives
// events/s and ETA periodically. See projector.Rebuild.
func Rebuild(ctx context.Context, cfg Config, name string, progress func(projector.Progress)) (projector.Progress, error) {
	if cfg.Projections == nil {
		cfg.Projections = Builtin(nil)
	}
	return projector.Rebuild(ctx, cfg, name, projector.RebuildOptions{Progress: progress})
}

// Names lists the built-in projections' names.
func Names() []string {
	var out []string
	for _, p := range Builtin(nil) {
		out = append(out, p.Name())
	}
	return out
}
