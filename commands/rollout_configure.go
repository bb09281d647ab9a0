package commands

import (
	"context"
	"errors"
	"time"

	"github.com/authledger/authledger/domain/rollout"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// ConfigureRollout changes the staged rollout of external login. The
// actor (who) is in Meta; the event holds when.
type ConfigureRollout struct {
	Change rollout.Change
	Meta   Meta
}

// ConfigureRolloutResult is the settings after the change and the log
// position written (zero when nothing changed).
type ConfigureRolloutResult struct {
	Settings rollout.Settings
	Position eventstore.Position
}

// ConfigureRolloutHandler loads the rollout stream, decides and appends at
// its expected revision: `authledger rollout set` and PUT
// /v1/admin/rollout run it alike.
type ConfigureRolloutHandler struct {
	Rollouts *Repository[*rollout.Rollout]
	Now      func() time.Time
}

// Handle normalises the allowlist's addresses (each invalid one is a
// *user.InvalidInputError) and configures.
func (h *ConfigureRolloutHandler) Handle(ctx context.Context, cmd ConfigureRollout) (ConfigureRolloutResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	c := cmd.Change
	var errs []error
	norm := func(in []string) []string {
		out := make([]string, 0, len(in))
		for _, e := range in {
			n, err := user.NormalizeEmail(e)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, n)
		}
		return out
	}
	c.Allow, c.Disallow = norm(c.Allow), norm(c.Disallow)
	if err := errors.Join(errs...); err != nil {
		return ConfigureRolloutResult{}, err
	}
	var settings rollout.Settings
	res, err := h.Rollouts.Update(ctx, rollout.StreamName, cmd.Meta, func(r *rollout.Rollout) error {
		if err := r.Configure(c, now); err != nil {
			return err
		}
		settings = r.Settings()
		return nil
	})
	if err != nil {
		return ConfigureRolloutResult{}, err
	}
	return ConfigureRolloutResult{Settings: settings, Position: res.Position}, nil
}
