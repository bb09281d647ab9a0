// Package webhooks serves the administration of webhook endpoints
// (/v1/admin/webhooks): registration (the signing secret shown once),
// listing, disabling, enabling, deleting and rotating the secret (the
// previous one signs beside the new for a day), and each endpoint's
// deliveries, which can be sent again. Every route needs webhooks:manage.
package webhooks

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	domain "github.com/authledger/authledger/domain/webhook"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/notify/webhook"
	"github.com/authledger/authledger/reactors/webhooks"
	"github.com/authledger/authledger/readapi"
)

// Deps are what the routes need, built by cmd/.
type Deps struct {
	Register  *commands.RegisterWebhookHandler
	Change    *commands.ChangeWebhookHandler
	Endpoints *commands.Repository[*domain.Endpoint]
	// DB holds the reactor's tables (the endpoint list and deliveries).
	DB      webhooks.Querier
	Secrets *webhook.Secrets
	// Waiter and ConsistencyTimeout serve the X-Consistency-Token of the
	// list routes (readapi.Consistency).
	Waiter             readapi.Waiter
	ConsistencyTimeout time.Duration
	// Wake makes the deliverer look for due rows now (nil: it polls).
	Wake func()
}

// Validate reports every missing dependency at once.
func (d Deps) Validate() error {
	if d.Register == nil || d.Change == nil || d.Endpoints == nil || d.DB == nil || d.Secrets == nil || d.Waiter == nil {
		return errors.New("httpapi/webhooks: Deps needs the register and change handlers, the endpoint repository, the database, the secrets and a waiter")
	}
	return nil
}

// Mount registers the routes on v1, the /v1 group behind the
// authentication middleware.
func Mount(v1 *gin.RouterGroup, d Deps) error {
	if err := d.Validate(); err != nil {
		return err
	}
	h := &handlers{d: d}
	need := httpapi.Require(access.WebhooksManage)
	consistent := readapi.Consistency(d.Waiter, d.ConsistencyTimeout, webhooks.Name)
	v1.POST("/admin/webhooks", need, h.register)
	v1.GET("/admin/webhooks", need, consistent, h.list)
	v1.GET("/admin/webhooks/:id", need, h.get)
	v1.DELETE("/admin/webhooks/:id", need, h.change(commands.WebhookDelete))
	v1.POST("/admin/webhooks/:id/disable", need, h.change(commands.WebhookDisable))
	v1.POST("/admin/webhooks/:id/enable", need, h.change(commands.WebhookEnable))
	v1.POST("/admin/webhooks/:id/rotate-secret", need, h.change(commands.WebhookRotateSecret))
	v1.GET("/admin/webhooks/:id/deliveries", need, consistent, h.deliveries)
	v1.POST("/admin/webhooks/:id/deliveries/:delivery_id/resend", need, h.resend)
	return nil
}

type handlers struct{ d Deps }

func meta(c *gin.Context, p httpapi.Principal) commands.Meta {
	return commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), p.Actor())
}

func (h *handlers) register(c *gin.Context) {
	p, _ := httpapi.Caller(c)
	var body struct {
		URL         string   `json:"url"`
		EventTypes  []string `json:"event_types"`
		Description string   `json:"description"`
	}
	if err := httpapi.BindJSON(c, &body); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	res, err := h.d.Register.Handle(c.Request.Context(), commands.RegisterWebhook{URL: body.URL, EventTypes: body.EventTypes,
		Description: body.Description, By: p.UserID, Meta: meta(c, p)})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	var v domain.View
	_ = domain.Apply(&v, res.Registered)
	httpapi.SetConsistencyToken(c, res.Position)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, struct {
		domain.View
		Secret string `json:"secret"`
	}{v, h.d.Secrets.Derive(v.ID, v.SecretVersion).String()})
}

func (h *handlers) list(c *gin.Context) {
	items, err := webhooks.Endpoints(c.Request.Context(), h.d.DB)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.Header("Cache-Control", "private, no-store")
	c.JSON(http.StatusOK, gin.H{"items": items})
}

// endpoint is the endpoint of the :id parameter read from its stream (so
// that a change just made shows), or false after answering 404.
func (h *handlers) endpoint(c *gin.Context) (domain.View, bool) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		httpapi.WriteError(c, domain.ErrNotFound)
		return domain.View{}, false
	}
	e, err := h.d.Endpoints.Load(c.Request.Context(), domain.StreamName(id))
	if err != nil {
		httpapi.WriteError(c, err)
		return domain.View{}, false
	}
	if !e.Exists() {
		httpapi.WriteError(c, domain.ErrNotFound)
		return domain.View{}, false
	}
	return e.View(), true
}

func (h *handlers) get(c *gin.Context) {
	if v, ok := h.endpoint(c); ok {
		c.Header("Cache-Control", "private, no-store")
		c.JSON(http.StatusOK, v)
	}
}

func (h *handlers) change(action commands.WebhookAction) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, _ := httpapi.Caller(c)
		id, err := uuid.Parse(c.Param("id"))
		if err != nil {
			httpapi.WriteError(c, domain.ErrNotFound)
			return
		}
		var body struct {
			Reason string `json:"reason"`
		}
		if action == commands.WebhookDisable && c.Request.ContentLength != 0 {
			if err := httpapi.BindJSON(c, &body); err != nil {
				httpapi.WriteError(c, err)
				return
			}
		}
		res, err := h.d.Change.Handle(c.Request.Context(), commands.ChangeWebhook{ID: id, Action: action, Reason: body.Reason, Meta: meta(c, p)})
		if err != nil {
			httpapi.WriteError(c, err)
			return
		}
		httpapi.SetConsistencyToken(c, res.Position)
		switch action {
		case commands.WebhookDelete:
			c.Status(http.StatusNoContent)
		case commands.WebhookRotateSecret:
			// The new secret, shown this once.
			c.Header("Cache-Control", "no-store")
			c.JSON(http.StatusOK, struct {
				domain.View
				Secret string `json:"secret"`
			}{res.View, h.d.Secrets.Derive(res.View.ID, res.View.SecretVersion).String()})
		default:
			c.JSON(http.StatusOK, res.View)
		}
	}
}

func (h *handlers) deliveries(c *gin.Context) {
	v, ok := h.endpoint(c)
	if !ok {
		return
	}
	state := c.Query("state")
	switch state {
	case "", webhooks.StatePending, webhooks.StateDelivered, webhooks.StateDead:
	default:
		httpapi.WriteError(c, problem.Invalid("The query is invalid.", problem.FieldError{Field: "state", Message: "must be pending, delivered or dead"}))
		return
	}
	limit := webhooks.MaxListed
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > webhooks.MaxListed {
			httpapi.WriteError(c, problem.Invalid("The query is invalid.", problem.FieldError{Field: "limit", Message: "must be from 1 to " + strconv.Itoa(webhooks.MaxListed)}))
			return
		}
		limit = n
	}
	items, err := webhooks.Deliveries(c.Request.Context(), h.d.DB, v.ID, state, limit)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	c.Header("Cache-Control", "private, no-store")
	c.JSON(http.StatusOK, gin.H{"items": items})
}

func (h *handlers) resend(c *gin.Context) {
	v, ok := h.endpoint(c)
	if !ok {
		return
	}
	eventID, err := uuid.Parse(c.Param("delivery_id"))
	if err != nil {
		httpapi.WriteError(c, webhooks.ErrDeliveryNotFound)
		return
	}
	if !v.Enabled {
		httpapi.WriteError(c, webhooks.ErrEndpointDisabled)
		return
	}
	if err := webhooks.Resend(c.Request.Context(), h.d.DB, v.ID, eventID, time.Now()); err != nil {
		httpapi.WriteError(c, err)
		return
	}
	if h.d.Wake != nil {
		h.d.Wake()
	}
	c.Status(http.StatusAccepted)
}
