package main

import (
	"fmt"
	"log/slog"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authledger/authledger/auth/upstream"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/config"
	identityhttp "github.com/authledger/authledger/httpapi/identity"
	oidchttp "github.com/authledger/authledger/httpapi/oidc"
)

// mountUpstream builds the configured upstream providers (nothing is
// fetched from them yet) and mounts the sign-in routes. Without
// providers the routes answer 404 for every provider name, and the
// /v1/me/identities routes still list and unlink.
func mountUpstream(engine *gin.Engine, cfg config.Config, ident *identityCore, reg prometheus.Registerer, log *slog.Logger) error {
	m := upstream.NewMetrics()
	if err := reg.Register(m); err != nil {
		return err
	}
	providers := map[string]upstream.Provider{}
	for _, pc := range cfg.OIDC.Providers {
		pc.Transport.Logger = log
		p, err := upstream.New(pc, m)
		if err != nil {
			return fmt.Errorf("upstream provider %s: %w", pc.Name, err)
		}
		providers[pc.Name] = p
		log.Info("upstream sign-in provider", slog.String("provider", pc.Name), slog.String("kind", pc.Kind), slog.String("callback", pc.RedirectURL))
	}
	return oidchttp.Mount(&engine.RouterGroup, oidchttp.Deps{
		Providers: providers, Handler: ident.upstream, Key: ident.upstreamKey,
		AllowedRedirects: cfg.OIDC.AllowedRedirects, PublicURL: cfg.PublicURL,
		Authenticated: ident.deps.Authenticated(), Metrics: m, RateLimit: ident.deps.RateLimit, Logger: log,
		TokenResponse: func(c *gin.Context, r commands.LoginResult) { identityhttp.WriteTokenResponse(c, cfg.PublicURL, r) },
	})
}
