package config

import (
	"slices"
	"strings"
	"time"
)

// MFA configures second factors (docs/adr/0032).
type MFA struct {
	// Issuer labels the entry an authenticator app shows.
	Issuer string
	// RequiredRoles must log in with a second factor: a user holding one
	// without a factor is made to set one up at the next login.
	RequiredRoles []string
	// StepUpMaxAge is how recent a login with a second factor must be to
	// remove a factor, add one, or get new backup codes.
	StepUpMaxAge time.Duration
	// ChallengeTTL is an mfa_token's life.
	ChallengeTTL time.Duration
}

var mfaVars = []Var{
	{
		Name:        "AUTHLEDGER_MFA_ISSUER",
		Default:     "authledger",
		Description: "Issuer label of the TOTP entries authenticator apps show (the otpauth URI's issuer).",
		set:         func(c *Config, v string) error { c.MFA.Issuer = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_MFA_REQUIRED_ROLES",
		DefaultDoc:  "(none)",
		Description: "Comma-separated roles that must use a second factor: a password login of a user holding one without a factor answers 401 mfa-enrollment-required with an mfa_token that can only set up an authenticator app (POST /v1/auth/mfa/totp) and confirm it (POST /v1/auth/mfa/verify).",
		set: func(c *Config, v string) error {
			c.MFA.RequiredRoles = nil
			for r := range strings.SplitSeq(v, ",") {
				if r = strings.TrimSpace(r); r != "" && !slices.Contains(c.MFA.RequiredRoles, r) {
					c.MFA.RequiredRoles = append(c.MFA.RequiredRoles, r)
				}
			}
			return nil
		},
	},
	{
		Name:        "AUTHLEDGER_MFA_STEP_UP_MAX_AGE",
		Default:     "10m",
		Description: "How recent a login with a second factor (amr and auth_time of the access token) must be to remove a factor, add another, or regenerate backup codes (401 step-up-required otherwise).",
		set:         duration(func(c *Config) *time.Duration { return &c.MFA.StepUpMaxAge }),
	},
	{
		Name:        "AUTHLEDGER_MFA_TOKEN_TTL",
		Default:     "5m",
		Description: "Life of the single-use mfa_token a correct password of a user with a second factor answers with.",
		set:         duration(func(c *Config) *time.Duration { return &c.MFA.ChallengeTTL }),
	},
}

func (m MFA) validate(bad func(name, format string, args ...any)) {
	if m.Issuer == "" || strings.Contains(m.Issuer, ":") {
		bad("AUTHLEDGER_MFA_ISSUER", "must not be empty or contain a colon")
	}
	if m.StepUpMaxAge <= 0 || m.StepUpMaxAge > 24*time.Hour {
		bad("AUTHLEDGER_MFA_STEP_UP_MAX_AGE", "must be positive and at most 24h")
	}
	if m.ChallengeTTL < 30*time.Second || m.ChallengeTTL > 30*time.Minute {
		bad("AUTHLEDGER_MFA_TOKEN_TTL", "must be from 30s to 30m")
	}
}

// init places mfaVars after the account variables.
func init() {
	at := len(table)
	for i, v := range table {
		if v.Name == "AUTHLEDGER_SMS_FROM" {
			at = i + 1
		}
	}
	table = append(table[:at], append(slices.Clone(mfaVars), table[at:]...)...)
}
