package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/config"
	webhookdomain "github.com/authledger/authledger/domain/webhook"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	webhookshttp "github.com/authledger/authledger/httpapi/webhooks"
	"github.com/authledger/authledger/notify/webhook"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/publicevents"
	"github.com/authledger/authledger/reactors/webhooks"
)

// webhookSecretKeyPurpose names the HKDF derivation of the key the
// webhook endpoints' secrets are derived under (notify/webhook.Secrets).
// Changing it changes every endpoint's secret.
const webhookSecretKeyPurpose = "webhook secrets v1" //nolint:gosec // a derivation label, not a credential

// webhookCore is the webhooks feature: the policy that makes deliveries,
// the deliverer that posts them, and the admin routes' dependencies
// (less the waiter, known once the runner is built).
type webhookCore struct {
	policy    projector.Projection
	deliverer *webhooks.Deliverer
	client    *webhook.Client
	deps      webhookshttp.Deps
}

// wireWebhooks builds the webhooks feature on the log and the read-model
// database; key derives the secrets.
func wireWebhooks(cfg config.Config, store eventstore.Store, db *pgxpool.Pool, key []byte, log *slog.Logger, h hooks) (*webhookCore, error) {
	reg := events.NewRegistry()
	if err := webhookdomain.RegisterEvents(reg); err != nil {
		return nil, err
	}
	repo, err := commands.NewRepository(store, reg, webhookdomain.FromHistory)
	if err != nil {
		return nil, err
	}
	secrets, err := webhook.NewSecrets(key)
	if err != nil {
		return nil, err
	}
	mapper, err := publicevents.NewMapper(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	policy, err := webhooks.New(mapper)
	if err != nil {
		return nil, err
	}
	allow := cfg.Webhooks.Allowlist()
	register := &commands.RegisterWebhookHandler{Endpoints: repo, Rules: webhookdomain.Rules{
		Known: func(t string) bool {
			name, ok := publicevents.InternalName(t)
			return ok && publicevents.IsPublished(name)
		},
		PlainHTTP: allow.AllowsHost,
	}}
	change := &commands.ChangeWebhookHandler{Endpoints: repo}
	client := webhook.NewClient(webhook.ClientConfig{Allow: allow, Timeout: cfg.Webhooks.Timeout, UserAgent: "authledger-webhooks/" + Version()})
	system := commands.Meta{Actor: events.Actor{Kind: events.ActorSystem}}
	deliverer, err := webhooks.NewDeliverer(webhooks.DeliveryConfig{
		Pool: db, Client: client, Secrets: secrets, Schedule: cfg.Webhooks.RetrySchedule, Poll: h.webhookPoll, Logger: log,
		Disable: func(ctx context.Context, id uuid.UUID, reason string) error {
			_, err := change.Handle(ctx, commands.ChangeWebhook{ID: id, Action: commands.WebhookDisable, Reason: reason, Automatic: true, Meta: system})
			return err
		},
		// Longer than an attempt may take, so that no two deliverers post
		// the same row at once.
		Lease: max(2*time.Minute, 2*cfg.Webhooks.Timeout),
	})
	if err != nil {
		return nil, err
	}
	return &webhookCore{policy: policy, deliverer: deliverer, client: client, deps: webhookshttp.Deps{
		Register: register, Change: change, Endpoints: repo, DB: db, Secrets: secrets,
		ConsistencyTimeout: cfg.ConsistencyWait, Wake: deliverer.Wake,
	}}, nil
}
