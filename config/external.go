package config

import (
	"errors"
	"strconv"

	"github.com/authledger/authledger/auth/external"
)

// External auth modes (AUTHLEDGER_USE_EXTERNAL_AUTH).
const (
	// ExternalAuthOff: every login checks the local password hash.
	ExternalAuthOff = "off"
	// ExternalAuthOn: every login goes to the external auth API.
	ExternalAuthOn = "on"
	// ExternalAuthStaged routes the allowlisted addresses and a percentage
	// of the others to the external API, as the rollout stream says
	// (`authledger rollout set`, PUT /v1/admin/rollout); with no change
	// recorded yet, nobody.
	ExternalAuthStaged = "staged"
)

// Fallbacks while the external API is unavailable
// (AUTHLEDGER_EXTERNAL_AUTH_FALLBACK).
const (
	// FallbackNone answers 503 auth-provider-unavailable.
	FallbackNone = "none"
	// FallbackLocal checks the local password hash of users who have one.
	FallbackLocal = "local"
)

// ExternalAuth is the configuration of logins through the external auth
// API (docs/external-auth.md).
type ExternalAuth struct {
	// Mode is ExternalAuthOff, ExternalAuthOn or ExternalAuthStaged: the
	// mode until the rollout stream records one, and off whatever the
	// stream says.
	Mode string
	// Fallback is FallbackNone or FallbackLocal.
	Fallback string
	// Provision creates a local user, without a password hash, at the
	// first external login of an address no local account holds.
	Provision bool
	// LocalPasswords false (AUTHLEDGER_LOCAL_PASSWORDS=off) refuses every
	// local password like a wrong one, deleting nothing: the clean-up step
	// once every user is linked, undone by turning it back on.
	LocalPasswords bool
	// CAFile, when set, is a PEM file of authorities trusted beside the
	// system's (AUTHLEDGER_EXTERNAL_AUTH_CA_FILE); cmd/ reads it into
	// Client.RootCAs.
	CAFile string
	// Client configures the API client and the token validator; it is
	// validated only when Mode is not off, so that a deployment without
	// external auth needs none of it.
	Client external.Config
}

// Enabled reports whether logins go to the external API.
func (e ExternalAuth) Enabled() bool { return e.Mode != ExternalAuthOff }

func boolean(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("not a boolean")
		}
		*field(c) = b
		return nil
	}
}

func (e ExternalAuth) validate(bad func(name, format string, args ...any), errs *[]error) {
	switch e.Mode {
	case ExternalAuthOff, ExternalAuthOn, ExternalAuthStaged:
	default:
		bad("AUTHLEDGER_USE_EXTERNAL_AUTH", "%q is not off, on or staged", e.Mode)
	}
	switch e.Fallback {
	case FallbackNone, FallbackLocal:
	default:
		bad("AUTHLEDGER_EXTERNAL_AUTH_FALLBACK", "%q is neither none nor local", e.Fallback)
	}
	if !e.LocalPasswords && e.Mode == ExternalAuthOff {
		bad("AUTHLEDGER_LOCAL_PASSWORDS", "off with AUTHLEDGER_USE_EXTERNAL_AUTH=off would let nobody log in")
	}
	if !e.LocalPasswords && e.Fallback == FallbackLocal {
		bad("AUTHLEDGER_LOCAL_PASSWORDS", "off contradicts AUTHLEDGER_EXTERNAL_AUTH_FALLBACK=local")
	}
	if e.Mode == ExternalAuthOff {
		return
	}
	// Each of Validate's errors names its variable already.
	if err := e.Client.Validate(); err != nil {
		*errs = append(*errs, err)
	}
}
