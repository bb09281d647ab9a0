// Package errtable is the one table from the domain's and the commands'
// errors to the problems clients see: which status and which `type` slug
// each answers, and the detail shown with it. cmd hands it to the engine
// (httpapi.Config.Errors); httpapi.WriteError applies it to every error a
// handler passes, so no handler maps errors itself.
//
// The table is not compiled into package httpapi because it names command
// errors, and readapi, which writes its errors with httpapi.WriteError,
// must not depend on the commands (ARCHITECTURE.md; docs/adr/0015).
//
// The slugs are part of the API contract (openapi.yaml, API.md): never
// rename one. Details must not tell whether an account exists. The test
// beside it fails when a package the table draws on exports an Err*
// variable that is neither mapped nor listed as deliberately absent.
package errtable

import (
	"errors"
	"strconv"
	"time"

	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/apikey"
	"github.com/authledger/authledger/domain/rollout"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/domain/webhook"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/projections/userviews"
	"github.com/authledger/authledger/reactors/webhooks"
)

// QuotaRetryAfter is the Retry-After of a task-quota answer: a task stops
// counting as active once the worker has processed it (seconds to a
// minute of OCR) or its owner deletes it, so retrying sooner mostly fails
// again and much later keeps a client waiting for nothing. Stored bytes
// free up only when the owner deletes tasks: the same interval keeps such
// a client polling gently.
const QuotaRetryAfter = 30 * time.Second

// Table returns the table, in the order it is walked: an error that wraps
// another is listed before it (a refused refresh wraps the session's own
// reason, which must not decide the answer).
func Table() httpapi.ErrorTable {
	invalid := problem.Invalid("Some fields are invalid.")
	return httpapi.ErrorTable{
		// Commands.
		{Err: commands.ErrConflict, Problem: problem.Conflict("", "The resource kept changing while the request ran; nothing was written. Retry the request.")},
		// One answer for an unknown email and a wrong password.
		{Err: commands.ErrInvalidCredentials, Problem: problem.Unauthenticated("invalid-credentials", "The email or password is incorrect.")},
		// After the password checked out (ADR 0034): the detail names the
		// version to send back as accept_terms.
		{Err: commands.ErrTermsAcceptanceRequired, Problem: &problem.Error{Kind: problem.KindForbidden, Slug: "terms-acceptance-required",
			Detail: "The terms of service changed; accept the current version to continue."}, Details: termsVersion},
		{Err: user.ErrErased, Problem: problem.NotFound("No such user.")},
		{Err: commands.ErrInvalidToken, Problem: problem.Unauthenticated("invalid-token", "The refresh token is invalid, expired or revoked.")},
		// Before the user and input rules: a provider's unusable answer
		// (an address the domain refuses) wraps their errors, and is the
		// provider's fault, not the client's.
		{Err: commands.ErrAuthProviderUnavailable, Problem: &problem.Error{Kind: problem.KindUnavailable, Slug: "auth-provider-unavailable",
			RetryAfter: time.Second, Detail: "The identity provider cannot check credentials right now; retry later."}, Details: providerWait},
		// Upstream sign-in (docs/oidc-providers.md).
		{Err: commands.ErrUpstreamRefused, Problem: &problem.Error{Kind: problem.KindForbidden, Slug: "upstream-sign-in-refused",
			Detail: "This provider account cannot sign in here. If you have an account, sign in with it and link the provider from your account."}},
		{Err: commands.ErrUpstreamFlowInvalid, Problem: &problem.Error{Kind: problem.KindInvalidInput, Slug: "upstream-flow-invalid",
			Detail: "The sign-in expired, was already used, or was started in another browser; start again."}},
		{Err: commands.ErrUpstreamFailed, Problem: &problem.Error{Kind: problem.KindUnauthenticated, Slug: "upstream-sign-in-failed",
			Detail: "The identity provider did not complete the sign-in; start again."}},
		{Err: commands.ErrPasswordRequired, Problem: problem.Unauthenticated("password-required",
			"An account with this address exists: send its password to link the provider to it.")},
		{Err: user.ErrLastSignInMethod, Problem: problem.Conflict("last-sign-in-method", "This is the account's last way to sign in; set a password or link another provider first.")},
		{Err: user.ErrNotLinked, Problem: problem.NotFound("The account is not linked to this provider.")},
		// Second factors (docs/adr/0032). The two challenges are answered
		// only after a correct first factor.
		{Err: commands.ErrMFARequired, Problem: problem.Unauthenticated("mfa-required",
			"A second factor is required: send the mfa_token with a code to POST /v1/auth/mfa/verify.")},
		{Err: commands.ErrMFAEnrollmentRequired, Problem: problem.Unauthenticated("mfa-enrollment-required",
			"Your role requires a second factor: set one up with the mfa_token (POST /v1/auth/mfa/totp), then verify its first code.")},
		{Err: commands.ErrInvalidMFAToken, Problem: problem.Unauthenticated("invalid-mfa-token", "The mfa_token is invalid, expired or already used; log in again.")},
		{Err: commands.ErrInvalidSecondFactor, Problem: problem.Unauthenticated("invalid-mfa-code", "The code is incorrect or was already used.")},
		{Err: commands.ErrInvalidConfirmationCode, Problem: &problem.Error{Kind: problem.KindInvalidInput, Slug: "invalid-confirmation-code",
			Detail: "The code does not match the new authenticator app; check the phone's clock and try the next code."}},
		{Err: commands.ErrStepUpRequired, Problem: problem.Unauthenticated("step-up-required",
			"This change needs a recent login with a second factor; log in again with your code.")},
		{Err: commands.ErrMFAMethodNotFound, Problem: problem.NotFound("No such second factor.")},
		{Err: commands.ErrMFATooMany, Problem: problem.Conflict("too-many-authenticators", "Remove an authenticator app before adding another.")},
		{Err: commands.ErrInvalidPhone, Problem: problem.Invalid("The phone number is invalid.", problem.FieldError{Field: "phone", Message: "must be in E.164 form: + and 7 to 15 digits"})},
		{Err: commands.ErrMFAEmailUnverified, Problem: problem.Conflict("email-unverified", "Verify your email address before it can receive sign-in codes.")},
		{Err: commands.ErrMFAAlreadyEnrolled, Problem: problem.Conflict("already-enrolled", "Sign-in codes by email are on already.")},
		{Err: commands.ErrMFACodeThrottled, Problem: problem.RateLimited("rate-limited", 30*time.Second, "A code was sent a moment ago; retry later."), Details: codeWait},
		{Err: commands.ErrMFANoPrimaryFactor, Problem: problem.Conflict("no-second-factor", "Backup codes need a confirmed authenticator app first.")},
		// Passkeys (docs/adr/0037).
		{Err: commands.ErrInvalidPasskey, Problem: &problem.Error{Kind: problem.KindInvalidInput, Slug: "invalid-passkey",
			Detail: "The passkey's answer does not verify, or its registration expired or was already finished; begin again."}},
		{Err: commands.ErrPasskeyLogin, Problem: problem.Unauthenticated("invalid-passkey-login",
			"The passkey sign-in does not verify, expired or was already used; begin again.")},
		{Err: commands.ErrPasskeysOff, Problem: problem.NotFound("Passkeys are not configured on this server.")},
		// Only administrators name users by id.
		{Err: commands.ErrUserNotFound, Problem: problem.NotFound("No such user.")},
		// No such session, or another user's: not told apart.
		{Err: commands.ErrSessionNotFound, Problem: problem.NotFound("No such session.")},

		// Users and passwords.
		{Err: user.ErrThrottled, Problem: problem.RateLimited("rate-limited", time.Second, "Too many failed logins from here; retry later."), Details: throttleWait},
		{Err: user.ErrInvalidToken, Problem: &problem.Error{Kind: problem.KindInvalidInput, Slug: "invalid-mail-token",
			Detail: "The link is invalid, expired or already used; ask for a new one."}},
		{Err: commands.ErrEmailNotVerified, Problem: problem.Unauthenticated("email-not-verified",
			"Confirm your email address first: follow the link we sent, or ask for a new one at POST /v1/auth/verify-email/resend.")},
		{Err: user.ErrEmailTaken, Problem: problem.Conflict("email-taken", "This email address is already registered.")},
		// Only a caller the provider authenticated sees it, about their
		// own account.
		{Err: user.ErrExternalIdentityConflict, Problem: problem.Conflict("external-identity-conflict", "This account is linked to another identity at the identity provider; an administrator must resolve it.")},
		{Err: user.ErrInvalidInput, Problem: invalid, Details: invalidFields},
		{Err: password.ErrPolicy, Problem: invalid, Details: invalidFields},
		// Only a caller who gave the right password sees either, about
		// their own account.
		{Err: user.ErrAccountDisabled, Problem: problem.Unauthenticated("account-disabled", "This account is disabled; an administrator can enable it.")},
		{Err: user.ErrAccountLocked, Problem: problem.Unauthenticated("account-locked", "This account is locked; an administrator can unlock it.")},
		{Err: rollout.ErrInvalidInput, Problem: problem.Invalid("The rollout change is invalid: mode off, on or staged; percentage 0 to 100.")},

		// Roles (the admin API).
		{Err: access.ErrRoleNotFound, Problem: problem.NotFound("No such role.")},
		{Err: access.ErrRoleExists, Problem: problem.Conflict("role-exists", "A role of this name exists or existed; role names are not reused.")},
		{Err: access.ErrBuiltinRole, Problem: problem.Conflict("builtin-role", "The built-in roles admin, auditor and user cannot be changed or deleted.")},
		{Err: access.ErrRoleInUse, Problem: problem.Conflict("role-in-use", "Another role inherits this role; change that role first.")},

		// Tasks and files. Another user's task or file answers exactly as
		// a missing one.
		{Err: task.ErrNotFound, Problem: problem.NotFound("No such task or file.")},
		{Err: task.ErrNotRetryable, Problem: problem.Conflict("not-retryable", "Only a failed task with attempts left can be retried.")},
		{Err: task.ErrQuotaExceeded, Problem: problem.RateLimited("task-quota", QuotaRetryAfter, "You have reached your limit of active tasks or stored bytes.")},
		{Err: task.ErrInvalidInput, Problem: problem.Invalid("The task request is invalid.")},

		// API keys and service accounts.
		{Err: apikey.ErrNotFound, Problem: problem.NotFound("No such API key.")},
		{Err: apikey.ErrServiceAccountNotFound, Problem: problem.NotFound("No such service account.")},
		{Err: apikey.ErrInvalid, Problem: problem.Unauthenticated("invalid-token", "The access token is invalid or expired.")},

		// Webhooks.
		{Err: webhook.ErrNotFound, Problem: problem.NotFound("No such webhook endpoint.")},
		{Err: webhooks.ErrDeliveryNotFound, Problem: problem.NotFound("No such delivery.")},
		{Err: webhooks.ErrEndpointDisabled, Problem: problem.Conflict("webhook-disabled", "The endpoint is disabled; enable it before resending.")},

		// Access tokens (the authentication middleware).
		{Err: token.ErrInvalidToken, Problem: problem.Unauthenticated("invalid-token", "The access token is invalid or expired.")},

		// Read models: a row the projection has not reached yet looks the
		// same as one that does not exist.
		{Err: userviews.ErrNotFound, Problem: problem.NotFound("Not found. If you have just registered or logged in, send the X-Consistency-Token of that response.")},
	}
}

// throttleWait answers with the throttle's own wait.
// termsVersion names the version to accept in the detail.
func termsVersion(err error, p *problem.Error) {
	var t *commands.TermsRequiredError
	if errors.As(err, &t) {
		p.Detail = "The terms of service changed; accept version " + strconv.Quote(t.Version) + " (accept_terms at login, or POST /v1/me/consents) to continue."
	}
}

func throttleWait(err error, p *problem.Error) {
	var t *user.ThrottledError
	if errors.As(err, &t) && t.RetryAfter > 0 {
		p.RetryAfter = t.RetryAfter
	}
}

// codeWait answers with the wait before the next mailed code.
func codeWait(err error, p *problem.Error) {
	var t *commands.MFACodeThrottledError
	if errors.As(err, &t) && t.RetryAfter > 0 {
		p.RetryAfter = t.RetryAfter
	}
}

// providerWait answers with the provider's own wait (the breaker's
// remaining delay, its Retry-After), at least the rule's second.
func providerWait(err error, p *problem.Error) {
	var e *commands.ProviderUnavailableError
	if errors.As(err, &e) && e.RetryAfter > p.RetryAfter {
		p.RetryAfter = e.RetryAfter
	}
}

// invalidFields lists every invalid field the error carries: a
// registration reports its email, display name and password problems
// together (errors.Join).
func invalidFields(err error, p *problem.Error) {
	for _, fe := range user.FieldErrors(err) {
		p.Fields = append(p.Fields, problem.FieldError{Field: fe.Field, Message: fe.Message})
	}
	var pe *password.PolicyError
	if errors.As(err, &pe) {
		p.Fields = append(p.Fields, problem.FieldError{Field: "password", Message: pe.Message})
	}
}
