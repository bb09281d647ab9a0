package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	domain "github.com/authledger/authledger/domain/webhook"
	"github.com/authledger/authledger/eventstore"
)

// RegisterWebhook registers an endpoint for some public event types.
type RegisterWebhook struct {
	URL         string
	EventTypes  []string
	Description string
	By          uuid.UUID
	Meta        Meta
}

// RegisterWebhookResult is the endpoint appended; its secret is derived
// by the caller from the id and the version (notify/webhook), never
// recorded.
type RegisterWebhookResult struct {
	Registered domain.Registered
	Position   eventstore.Position
}

// RegisterWebhookHandler appends webhook.registered.v1 to a new stream.
type RegisterWebhookHandler struct {
	Endpoints *Repository[*domain.Endpoint]
	Rules     domain.Rules
	Now       func() time.Time
}

// Handle registers.
func (h *RegisterWebhookHandler) Handle(ctx context.Context, cmd RegisterWebhook) (RegisterWebhookResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	id, err := uuid.NewV7()
	if err != nil {
		return RegisterWebhookResult{}, err
	}
	e, _ := domain.FromHistory(nil)
	if err := e.Register(domain.Spec{ID: id, URL: cmd.URL, EventTypes: cmd.EventTypes, Description: cmd.Description, By: cmd.By}, h.Rules, now); err != nil {
		return RegisterWebhookResult{}, err
	}
	res, err := h.Endpoints.Append(ctx, domain.StreamName(id), 0, cmd.Meta, e.Changes())
	if errors.Is(err, eventstore.ErrWrongExpectedVersion) {
		return RegisterWebhookResult{}, fmt.Errorf("%w: %s", ErrConflict, domain.StreamName(id))
	}
	if err != nil {
		return RegisterWebhookResult{}, err
	}
	reg, _ := e.Changes()[0].(domain.Registered)
	return RegisterWebhookResult{Registered: reg, Position: res.Position}, nil
}

// WebhookAction is what ChangeWebhook does.
type WebhookAction int

// The actions.
const (
	WebhookDisable WebhookAction = iota + 1
	WebhookEnable
	WebhookDelete
	// WebhookRotateSecret makes the next secret version current.
	WebhookRotateSecret
)

// ChangeWebhook disables, enables, deletes or rotates the secret of
// endpoint ID. Automatic marks
// a disabling by the deliverer (persistent failure), with Reason.
type ChangeWebhook struct {
	ID        uuid.UUID
	Action    WebhookAction
	Reason    string
	Automatic bool
	Meta      Meta
}

// ChangeWebhookResult is the endpoint after the change (Position zero
// when nothing changed: already in that state).
type ChangeWebhookResult struct {
	View     domain.View
	Position eventstore.Position
}

// ChangeWebhookHandler appends the endpoint's disabled, enabled, deleted
// or secret_rotated event.
type ChangeWebhookHandler struct {
	Endpoints *Repository[*domain.Endpoint]
	Now       func() time.Time
}

// Handle changes the endpoint.
func (h *ChangeWebhookHandler) Handle(ctx context.Context, cmd ChangeWebhook) (ChangeWebhookResult, error) {
	now := time.Now()
	if h.Now != nil {
		now = h.Now()
	}
	var out ChangeWebhookResult
	res, err := h.Endpoints.Update(ctx, domain.StreamName(cmd.ID), cmd.Meta, func(e *domain.Endpoint) error {
		var err error
		switch cmd.Action {
		case WebhookDisable:
			err = e.Disable(cmd.Reason, cmd.Automatic, now)
		case WebhookEnable:
			err = e.Enable(now)
		case WebhookDelete:
			err = e.Delete(now)
		case WebhookRotateSecret:
			err = e.RotateSecret(now)
		default:
			err = fmt.Errorf("commands: unknown webhook action %d", cmd.Action)
		}
		out.View = e.View()
		return err
	})
	out.Position = res.Position
	return out, err
}
