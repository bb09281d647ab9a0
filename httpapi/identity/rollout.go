package identity

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/rollout"
	"github.com/authledger/authledger/httpapi"
)

// RolloutState is the rollout as this instance applies it
// (auth/rollout.Live).
type RolloutState interface {
	Settings() rollout.Settings
}

// RolloutResponse is the body of GET and PUT /v1/admin/rollout.
type RolloutResponse struct {
	// ExternalAuth is AUTHLEDGER_USE_EXTERNAL_AUTH: off makes every login
	// local whatever the rollout says.
	ExternalAuth string     `json:"external_auth"`
	Mode         string     `json:"mode"`
	Percentage   int        `json:"percentage"`
	Allowlist    []string   `json:"allowlist"`
	Configured   bool       `json:"configured"`
	ConfiguredAt *time.Time `json:"configured_at"`
}

func (h *handlers) rolloutResponse(s rollout.Settings) RolloutResponse {
	r := RolloutResponse{ExternalAuth: h.d.ExternalAuthMode, Mode: s.Mode, Percentage: s.Percentage,
		Allowlist: s.AllowlistSorted(), Configured: s.Configured}
	if r.Allowlist == nil {
		r.Allowlist = []string{}
	}
	if s.Configured {
		at := s.At.UTC()
		r.ConfiguredAt = &at
	}
	return r
}

func (h *handlers) getRollout(c *gin.Context) {
	c.JSON(http.StatusOK, h.rolloutResponse(h.d.RolloutState.Settings()))
}

// putRollout runs the command and answers with the settings it wrote
// (this instance applies them within the follower's lag, like every
// other).
func (h *handlers) putRollout(c *gin.Context) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	var body struct {
		Mode        string   `json:"mode"`
		Percentage  *int     `json:"percentage"`
		AllowAdd    []string `json:"allow_add"`
		AllowRemove []string `json:"allow_remove"`
	}
	if !bind(c, &body) {
		return
	}
	meta := commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), p.Actor())
	res, err := h.d.Rollout.Handle(c.Request.Context(), commands.ConfigureRollout{Meta: meta, Change: rollout.Change{
		Mode: body.Mode, Percentage: body.Percentage, Allow: body.AllowAdd, Disallow: body.AllowRemove, Unconfigured: h.d.ExternalAuthMode}})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	if !res.Position.IsZero() {
		httpapi.SetConsistencyToken(c, res.Position)
	}
	c.JSON(http.StatusOK, h.rolloutResponse(res.Settings))
}
