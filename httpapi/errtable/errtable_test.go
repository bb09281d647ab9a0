package errtable_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/types"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/tools/go/packages"

	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/apikey"
	"github.com/authledger/authledger/domain/auditarchive"
	"github.com/authledger/authledger/domain/mfa"
	"github.com/authledger/authledger/domain/rollout"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/signin"
	"github.com/authledger/authledger/domain/signingkey"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/domain/webhook"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/errtable"
	"github.com/authledger/authledger/httpapi/problem"
	"github.com/authledger/authledger/outage"
	"github.com/authledger/authledger/projections/userviews"
	"github.com/authledger/authledger/reactors/webhooks"
)

const module = "github.com/authledger/authledger"

// answer is what a client sees for an error.
type answer struct {
	status int
	slug   string
}

// mapped is the intended answer to each exported error that reaches HTTP,
// written down apart from the table so that the test can tell them apart.
// The slugs are the API contract (openapi.yaml): changing one here is
// changing what clients see.
var mapped = map[string]struct {
	err error
	answer
}{
	"commands.ErrConflict":                    {commands.ErrConflict, answer{409, "conflict"}},
	"commands.ErrInvalidCredentials":          {commands.ErrInvalidCredentials, answer{401, "invalid-credentials"}},
	"commands.ErrInvalidToken":                {commands.ErrInvalidToken, answer{401, "invalid-token"}},
	"commands.ErrEmailNotVerified":            {commands.ErrEmailNotVerified, answer{401, "email-not-verified"}},
	"domain/user.ErrInvalidToken":             {user.ErrInvalidToken, answer{400, "invalid-mail-token"}},
	"commands.ErrSessionNotFound":             {commands.ErrSessionNotFound, answer{404, "not-found"}},
	"commands.ErrUserNotFound":                {commands.ErrUserNotFound, answer{404, "not-found"}},
	"commands.ErrTermsAcceptanceRequired":     {commands.ErrTermsAcceptanceRequired, answer{403, "terms-acceptance-required"}},
	"domain/user.ErrErased":                   {user.ErrErased, answer{404, "not-found"}},
	"commands.ErrAuthProviderUnavailable":     {commands.ErrAuthProviderUnavailable, answer{503, "auth-provider-unavailable"}},
	"commands.ErrUpstreamRefused":             {commands.ErrUpstreamRefused, answer{403, "upstream-sign-in-refused"}},
	"commands.ErrUpstreamFlowInvalid":         {commands.ErrUpstreamFlowInvalid, answer{400, "upstream-flow-invalid"}},
	"commands.ErrUpstreamFailed":              {commands.ErrUpstreamFailed, answer{401, "upstream-sign-in-failed"}},
	"commands.ErrPasswordRequired":            {commands.ErrPasswordRequired, answer{401, "password-required"}},
	"domain/user.ErrLastSignInMethod":         {user.ErrLastSignInMethod, answer{409, "last-sign-in-method"}},
	"domain/user.ErrNotLinked":                {user.ErrNotLinked, answer{404, "not-found"}},
	"domain/user.ErrExternalIdentityConflict": {user.ErrExternalIdentityConflict, answer{409, "external-identity-conflict"}},
	"domain/rollout.ErrInvalidInput":          {rollout.ErrInvalidInput, answer{400, "invalid-input"}},
	"domain/user.ErrThrottled":                {user.ErrThrottled, answer{429, "rate-limited"}},
	"domain/user.ErrEmailTaken":               {user.ErrEmailTaken, answer{409, "email-taken"}},
	"domain/user.ErrInvalidInput":             {user.ErrInvalidInput, answer{400, "invalid-input"}},
	"domain/user.ErrAccountDisabled":          {user.ErrAccountDisabled, answer{401, "account-disabled"}},
	"domain/user.ErrAccountLocked":            {user.ErrAccountLocked, answer{401, "account-locked"}},
	"domain/access.ErrRoleNotFound":           {access.ErrRoleNotFound, answer{404, "not-found"}},
	"domain/access.ErrRoleExists":             {access.ErrRoleExists, answer{409, "role-exists"}},
	"domain/access.ErrBuiltinRole":            {access.ErrBuiltinRole, answer{409, "builtin-role"}},
	"domain/access.ErrRoleInUse":              {access.ErrRoleInUse, answer{409, "role-in-use"}},
	"domain/apikey.ErrNotFound":               {apikey.ErrNotFound, answer{404, "not-found"}},
	"domain/apikey.ErrServiceAccountNotFound": {apikey.ErrServiceAccountNotFound, answer{404, "not-found"}},
	"domain/apikey.ErrInvalid":                {apikey.ErrInvalid, answer{401, "invalid-token"}},
	"domain/webhook.ErrNotFound":              {webhook.ErrNotFound, answer{404, "not-found"}},
	"reactors/webhooks.ErrDeliveryNotFound":   {webhooks.ErrDeliveryNotFound, answer{404, "not-found"}},
	"reactors/webhooks.ErrEndpointDisabled":   {webhooks.ErrEndpointDisabled, answer{409, "webhook-disabled"}},
	"auth/password.ErrPolicy":                 {password.ErrPolicy, answer{400, "invalid-input"}},
	"domain/task.ErrNotFound":                 {task.ErrNotFound, answer{404, "not-found"}},
	"domain/task.ErrNotRetryable":             {task.ErrNotRetryable, answer{409, "not-retryable"}},
	"domain/task.ErrQuotaExceeded":            {task.ErrQuotaExceeded, answer{429, "task-quota"}},
	"domain/task.ErrInvalidInput":             {task.ErrInvalidInput, answer{400, "invalid-input"}},
	"auth/token.ErrInvalidToken":              {token.ErrInvalidToken, answer{401, "invalid-token"}},
	"projections/userviews.ErrNotFound":       {userviews.ErrNotFound, answer{404, "not-found"}},
	"eventstore.ErrWrongExpectedVersion":      {eventstore.ErrWrongExpectedVersion, answer{409, "conflict"}},
	"outage.ErrUnavailable":                   {outage.ErrUnavailable, answer{503, "unavailable"}},
	"outage.ErrStorageFull":                   {outage.ErrStorageFull, answer{507, "storage-full"}},

	"commands.ErrMFARequired":             {commands.ErrMFARequired, answer{401, "mfa-required"}},
	"commands.ErrMFAEnrollmentRequired":   {commands.ErrMFAEnrollmentRequired, answer{401, "mfa-enrollment-required"}},
	"commands.ErrInvalidMFAToken":         {commands.ErrInvalidMFAToken, answer{401, "invalid-mfa-token"}},
	"commands.ErrInvalidSecondFactor":     {commands.ErrInvalidSecondFactor, answer{401, "invalid-mfa-code"}},
	"commands.ErrInvalidConfirmationCode": {commands.ErrInvalidConfirmationCode, answer{400, "invalid-confirmation-code"}},
	"commands.ErrStepUpRequired":          {commands.ErrStepUpRequired, answer{401, "step-up-required"}},
	"commands.ErrMFAMethodNotFound":       {commands.ErrMFAMethodNotFound, answer{404, "not-found"}},
	"commands.ErrMFATooMany":              {commands.ErrMFATooMany, answer{409, "too-many-authenticators"}},
	"commands.ErrMFANoPrimaryFactor":      {commands.ErrMFANoPrimaryFactor, answer{409, "no-second-factor"}},
	"commands.ErrMFAEmailUnverified":      {commands.ErrMFAEmailUnverified, answer{409, "email-unverified"}},
	"commands.ErrInvalidPhone":            {commands.ErrInvalidPhone, answer{400, "invalid-input"}},
	"commands.ErrMFAAlreadyEnrolled":      {commands.ErrMFAAlreadyEnrolled, answer{409, "already-enrolled"}},
	"commands.ErrMFACodeThrottled":        {commands.ErrMFACodeThrottled, answer{429, "rate-limited"}},

	// Passkeys (docs/adr/0037).
	"commands.ErrInvalidPasskey": {commands.ErrInvalidPasskey, answer{400, "invalid-passkey"}},
	"commands.ErrPasskeyLogin":   {commands.ErrPasskeyLogin, answer{401, "invalid-passkey-login"}},
	"commands.ErrPasskeysOff":    {commands.ErrPasskeysOff, answer{404, "not-found"}},
}

// absent are the exported errors that are deliberately not in the table,
// each with why. Reaching HTTP, each answers 500 internal-error, which is
// right for every one: it would be a bug, not something a client did.
var absent = map[string]struct {
	err    error
	reason string
}{
	"domain/signin.ErrUsed":            {signin.ErrUsed, "wrapped in commands.ErrUpstreamFlowInvalid by every command that returns it"},
	"domain/signin.ErrExpired":         {signin.ErrExpired, "wrapped in commands.ErrUpstreamFlowInvalid by every command that returns it"},
	"commands.ErrNoAccount":            {commands.ErrNoAccount, "`authledger users link` reports it per row; no HTTP route links by address"},
	"commands.ErrBootstrapPending":     {commands.ErrBootstrapPending, "serve's bootstrap of the first admin waits on it; no HTTP route bootstraps"},
	"domain/user.ErrNotRegistered":     {user.ErrNotRegistered, "a command on a user stream with no registration: commands check Registered first"},
	"domain/user.ErrAlreadyRegistered": {user.ErrAlreadyRegistered, "register reserves the address before it writes the user stream (email-taken)"},
	"domain/user.ErrNotReservedBy":     {user.ErrNotReservedBy, "an inconsistency between a reservation and its user, never the client's doing"},

	"domain/session.ErrInvalidInput":   {session.ErrInvalidInput, "session parameters are built by the commands, not sent by the client"},
	"domain/session.ErrInvalidToken":   {session.ErrInvalidToken, "a refresh refusal reaches HTTP wrapped in commands.ErrInvalidToken"},
	"domain/session.ErrReuseDetected":  {session.ErrReuseDetected, "a refresh refusal reaches HTTP wrapped in commands.ErrInvalidToken"},
	"domain/session.ErrRevoked":        {session.ErrRevoked, "a refresh refusal reaches HTTP wrapped in commands.ErrInvalidToken"},
	"domain/session.ErrExpired":        {session.ErrExpired, "a refresh refusal reaches HTTP wrapped in commands.ErrInvalidToken"},
	"domain/session.ErrNotStarted":     {session.ErrNotStarted, "revoke answers commands.ErrSessionNotFound for a session that never started"},
	"domain/session.ErrAlreadyStarted": {session.ErrAlreadyStarted, "session ids are chosen by the login command"},
	"domain/session.ErrHistoryNeeded":  {session.ErrHistoryNeeded, "the refresh command reloads the whole stream on it"},

	"domain/task.ErrInvalidTransition": {task.ErrInvalidTransition, "worker transitions (claim, complete, fail, expire), not client requests"},
	"domain/task.ErrAlreadyClaimed":    {task.ErrAlreadyClaimed, "the worker's claim"},
	"domain/task.ErrLeaseLost":         {task.ErrLeaseLost, "the worker's claim"},
	"domain/task.ErrClaimNotStale":     {task.ErrClaimNotStale, "the worker's stale-claim release"},
	"domain/task.ErrAlreadyExists":     {task.ErrAlreadyExists, "task ids are chosen by the server"},

	"domain/auditarchive.ErrOutOfOrder": {auditarchive.ErrOutOfOrder, "audit retention runs in serve and `authledger audit archive`, not over HTTP"},
	"domain/signingkey.ErrUnknownKey":   {signingkey.ErrUnknownKey, "signing keys are managed by `authledger keys`, not over HTTP"},
	"domain/signingkey.ErrKeyExists":    {signingkey.ErrKeyExists, "signing keys are managed by `authledger keys`, not over HTTP"},
	"domain/signingkey.ErrRetired":      {signingkey.ErrRetired, "signing keys are managed by `authledger keys`, not over HTTP"},
	"domain/signingkey.ErrInvalidInput": {signingkey.ErrInvalidInput, "signing keys are managed by `authledger keys`, not over HTTP"},

	"auth/password.ErrMalformedHash": {password.ErrMalformedHash, "a stored hash the server cannot read is its own fault"},
	"auth/password.ErrTooLong":       {password.ErrTooLong, "the policy refuses long passwords first (ErrPolicy)"},

	"auth/token.ErrExpired":             {token.ErrExpired, "always returned wrapped with token.ErrInvalidToken"},
	"auth/token.ErrInvalidRefreshToken": {token.ErrInvalidRefreshToken, "the refresh command answers commands.ErrInvalidToken for it"},
	"auth/token.ErrInvalidDeviceToken":  {token.ErrInvalidDeviceToken, "login ignores a device token that does not check out"},

	"eventstore.ErrInvalidPosition":       {eventstore.ErrInvalidPosition, "a malformed X-Consistency-Token is refused by readapi.Consistency as invalid-input"},
	"eventstore.ErrStreamNotFound":        {eventstore.ErrStreamNotFound, "commands fold a missing stream to an empty aggregate"},
	"eventstore.ErrStreamDeleted":         {eventstore.ErrStreamDeleted, "nothing deletes the streams commands write"},
	"eventstore.ErrRetryInNewTransaction": {eventstore.ErrRetryInNewTransaction, "the store retries it itself"},

	"domain/mfa.ErrNotFound":         {mfa.ErrNotFound, "the second-factor commands answer commands.ErrMFAMethodNotFound for it"},
	"domain/mfa.ErrTooMany":          {mfa.ErrTooMany, "the second-factor commands answer commands.ErrMFATooMany for it"},
	"domain/mfa.ErrNoPrimaryFactor":  {mfa.ErrNoPrimaryFactor, "the second-factor commands answer commands.ErrMFANoPrimaryFactor for it"},
	"domain/mfa.ErrAlreadyConfirmed": {mfa.ErrAlreadyConfirmed, "confirm checks the method is pending first (commands.ErrMFAMethodNotFound)"},
	"domain/mfa.ErrInvalidChallenge": {mfa.ErrInvalidChallenge, "verify answers commands.ErrInvalidMFAToken for it"},
	"domain/mfa.ErrCodeSpent":        {mfa.ErrCodeSpent, "verify answers commands.ErrInvalidSecondFactor for it, counted as a failure"},
	"domain/mfa.ErrNoCode":           {mfa.ErrNoCode, "verify answers commands.ErrInvalidSecondFactor for it, counted as a failure"},
	"domain/mfa.ErrAlreadyEnrolled":  {mfa.ErrAlreadyEnrolled, "the second-factor commands answer commands.ErrMFAAlreadyEnrolled for it"},

	// A cloned passkey (docs/adr/0037).
	"domain/mfa.ErrSignCountRegressed": {mfa.ErrSignCountRegressed, "verify answers commands.ErrInvalidSecondFactor, the passwordless login commands.ErrPasskeyLogin"},
}

// exportedErrors lists "path.ErrName" for every exported package-level
// variable named Err* of an error type in the packages the answers come
// from: the domain, the commands, every package of the module the table
// imports, and the lower layers httpapi maps itself (eventstore, outage).
func exportedErrors(t *testing.T) []string {
	t.Helper()
	load := func(mode packages.LoadMode, patterns ...string) []*packages.Package {
		pkgs, err := packages.Load(&packages.Config{Mode: mode, Context: t.Context()}, patterns...)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkgs {
			for _, e := range p.Errors {
				t.Fatalf("load %s: %v", p.PkgPath, e)
			}
		}
		return pkgs
	}
	patterns := []string{module + "/domain/...", module + "/commands", module + "/eventstore", module + "/outage"}
	for path := range load(packages.NeedName|packages.NeedImports, module+"/httpapi/errtable")[0].Imports {
		// The vocabulary and the engine hold the answers, not errors to
		// map.
		if strings.HasPrefix(path, module+"/") && path != module+"/httpapi" && path != module+"/httpapi/problem" {
			patterns = append(patterns, path)
		}
	}
	errType := types.Universe.Lookup("error").Type().Underlying().(*types.Interface)
	var out []string
	for _, p := range load(packages.NeedName|packages.NeedTypes, patterns...) {
		scope := p.Types.Scope()
		for _, name := range scope.Names() {
			v, ok := scope.Lookup(name).(*types.Var)
			if !ok || !v.Exported() || !strings.HasPrefix(name, "Err") || !types.Implements(v.Type(), errType) {
				continue
			}
			out = append(out, strings.TrimPrefix(p.PkgPath, module+"/")+"."+name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestEveryExportedErrorIsMappedOrDeliberatelyAbsent fails when a package
// the answers come from exports an error nobody decided the answer to (a
// new sentinel: add a rule to the table and a line to mapped, or a line to
// absent), and when mapped or absent name an error that no longer exists.
func TestEveryExportedErrorIsMappedOrDeliberatelyAbsent(t *testing.T) {
	t.Parallel()
	found := exportedErrors(t)
	if len(found) < len(mapped) {
		t.Fatalf("found only %d exported errors (%v): the enumeration is broken", len(found), found)
	}
	for _, name := range found {
		_, m := mapped[name]
		_, a := absent[name]
		switch {
		case m && a:
			t.Errorf("%s is both mapped and absent", name)
		case !m && !a:
			t.Errorf("%s is exported but neither in the error table (httpapi/errtable) nor listed as deliberately absent", name)
		}
	}
	for name := range mapped {
		if !slices.Contains(found, name) {
			t.Errorf("mapped lists %s, which is not an exported error any more", name)
		}
	}
	for name := range absent {
		if !slices.Contains(found, name) {
			t.Errorf("absent lists %s, which is not an exported error any more", name)
		}
	}
}

// TestEveryRuleHasAnIntendedAnswer walks the table: each rule's error is
// one of mapped, and no rule is unreachable behind an earlier one.
func TestEveryRuleHasAnIntendedAnswer(t *testing.T) {
	t.Parallel()
	table := errtable.Table()
	for i, r := range table {
		known := false
		for _, m := range mapped {
			known = known || m.err == r.Err //nolint:errorlint // the very sentinel, not one it wraps
		}
		if !known {
			t.Errorf("rule %d (%v) answers an error mapped does not list", i, r.Err)
		}
		if r.Problem == nil || r.Problem.Kind == "" {
			t.Errorf("rule %d (%v) has no problem", i, r.Err)
		}
		for j := range i {
			if errors.Is(r.Err, table[j].Err) {
				t.Errorf("rule %d (%v) is shadowed by rule %d (%v)", i, r.Err, j, table[j].Err)
			}
		}
	}
}

// engine is the real gin engine with the table, serving GET /err/N with
// WriteError(errs[N]).
func engine(t *testing.T, errs []error) *gin.Engine {
	t.Helper()
	e, err := httpapi.New(httpapi.Config{Logger: slog.New(slog.DiscardHandler), OpenAPI: []byte("openapi: 3.1.0\n"), Errors: errtable.Table()})
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		e.GET(fmt.Sprintf("/err/%d", i), func(c *gin.Context) { httpapi.WriteError(c, err) })
	}
	return e
}

type document struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []problem.FieldError
}

func get(t *testing.T, e *gin.Engine, i int) (*httptest.ResponseRecorder, document) {
	t.Helper()
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("/err/%d", i), nil))
	var d document
	if ct := rec.Header().Get("Content-Type"); ct != httpapi.ContentTypeProblem {
		t.Fatalf("Content-Type %q: %s", ct, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	return rec, d
}

// secret is text in the errors the answers must not show: a cause is for
// the log only (it may tell whether an account exists, or name a host).
const secret = "cause-only-the-log-may-see"

// TestEveryErrorAnswersItsIntendedProblem sends every mapped and every
// absent error, wrapped as the commands return them, through WriteError on
// the real engine.
func TestEveryErrorAnswersItsIntendedProblem(t *testing.T) {
	t.Parallel()
	type tc struct {
		name string
		err  error
		want answer
	}
	var cases []tc
	for name, m := range mapped {
		cases = append(cases, tc{name, fmt.Errorf("%s: %w", secret, m.err), m.answer})
	}
	for name, a := range absent {
		cases = append(cases, tc{name + " (absent)", fmt.Errorf("%s: %w", secret, a.err), answer{500, "internal-error"}})
	}
	errs := make([]error, len(cases))
	for i, c := range cases {
		errs[i] = c.err
	}
	e := engine(t, errs)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rec, d := get(t, e, i)
			if rec.Code != c.want.status || d.Status != c.want.status || d.Type != problem.TypeBase+c.want.slug {
				t.Errorf("answers %d %s, want %d %s", rec.Code, d.Type, c.want.status, c.want.slug)
			}
			if (c.want.status == 429 || c.want.status == 503) && rec.Header().Get("Retry-After") == "" {
				t.Errorf("%d without Retry-After", c.want.status)
			}
			if strings.Contains(rec.Body.String(), secret) {
				t.Errorf("the answer shows the error's text: %s", rec.Body)
			}
		})
	}
}

// TestAnswersCarryWhatTheErrorCarries: the invalid fields, the throttle's
// wait, and the first rule of a chain deciding.
func TestAnswersCarryWhatTheErrorCarries(t *testing.T) {
	t.Parallel()
	invalid := errors.Join(&user.InvalidInputError{Field: "email", Message: "must be a valid email address"},
		&user.InvalidInputError{Field: "display_name", Message: "must not be empty"})
	errs := []error{
		// A registration with every field wrong.
		errors.Join(invalid, &password.PolicyError{Field: "password", Rule: password.RuleTooShort, Message: "must be at least 10 characters"}),
		// A weak password alone.
		fmt.Errorf("register: %w", &password.PolicyError{Field: "password", Rule: password.RuleTooShort, Message: "must be at least 10 characters"}),
		&user.ThrottledError{RetryAfter: 2500 * time.Millisecond},
		// A reused refresh token: the command's answer, not the session's
		// reason, decides.
		fmt.Errorf("%w: %w", commands.ErrInvalidToken, session.ErrReuseDetected),
		// A deleted blob of a file: a missing file.
		fmt.Errorf("%w: %w", task.ErrNotFound, errors.New("blob: not found")),
		// The provider's breaker has 7 s to go; its answer held an
		// address the domain refuses, which is not the client's input.
		&commands.ProviderUnavailableError{RetryAfter: 7 * time.Second, Cause: &user.InvalidInputError{Field: "email", Message: "bad"}},
	}
	e := engine(t, errs)

	_, d := get(t, e, 0)
	fields := make([]string, 0, len(d.Errors))
	for _, f := range d.Errors {
		fields = append(fields, f.Field)
	}
	if d.Status != 400 || !slices.Equal(fields, []string{"email", "display_name", "password"}) {
		t.Errorf("registration: %d fields %v, want 400 email, display_name, password", d.Status, fields)
	}
	if _, d = get(t, e, 1); d.Status != 400 || len(d.Errors) != 1 || d.Errors[0].Field != "password" || d.Errors[0].Message == "" {
		t.Errorf("weak password: %+v", d)
	}
	if rec, d := get(t, e, 2); d.Status != 429 || rec.Header().Get("Retry-After") != "3" || d.Type != problem.TypeBase+"rate-limited" {
		t.Errorf("throttled: %d %s Retry-After %q, want 429 rate-limited 3", d.Status, d.Type, rec.Header().Get("Retry-After"))
	}
	if _, d = get(t, e, 3); d.Status != 401 || d.Type != problem.TypeBase+"invalid-token" {
		t.Errorf("reused refresh token: %+v", d)
	}
	if _, d = get(t, e, 4); d.Status != 404 {
		t.Errorf("deleted file: %+v", d)
	}
	if rec, d := get(t, e, 5); d.Status != 503 || rec.Header().Get("Retry-After") != "7" || d.Type != problem.TypeBase+"auth-provider-unavailable" || len(d.Errors) != 0 {
		t.Errorf("provider unavailable: %+v Retry-After %q", d, rec.Header().Get("Retry-After"))
	}
}

// TestLoginRefusalsAreIdentical: an unknown address and a wrong password
// are one error with different causes; the answer must not differ.
func TestLoginRefusalsAreIdentical(t *testing.T) {
	t.Parallel()
	table := errtable.Table()
	unknown := table.Problem(fmt.Errorf("%w: no account has this address", commands.ErrInvalidCredentials)).Document("")
	wrong := table.Problem(fmt.Errorf("%w: the password does not match", commands.ErrInvalidCredentials)).Document("")
	if fmt.Sprint(unknown) != fmt.Sprint(wrong) {
		t.Errorf("unknown address answers %+v, wrong password %+v", unknown, wrong)
	}
}
