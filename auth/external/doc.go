// Package external is the client of the organisation's external auth API
// (Azure AD behind it): login, refresh and me calls over HTTPS, each
// attempt bounded by a timeout, retried with backoff on transport errors
// and 5xx only, behind one circuit breaker (failsafe-go); and the
// TokenValidator that verifies the provider's JWTs against its OpenID
// discovery document and JWKS (jwx).
//
// The API's JSON shape lives in one place, Mapping (DefaultMapping is the
// shape docs/external-auth.md documents): a differently shaped API is a
// different Mapping, not a code change elsewhere.
//
// Errors fall in three disjoint classes, which callers map to answers:
//
//   - ErrInvalidCredentials: the provider answered 401 (wrong email or
//     password, refresh token no longer valid, access token refused).
//     Answer exactly as to a local wrong password.
//   - ErrUnavailable: no usable answer for a reason that may pass (the
//     breaker is open, an attempt timed out, the connection failed, 5xx or
//     429 after the retries). Answer 503 auth-provider-unavailable with
//     RetryAfter(err), or fall back to local login where allowed.
//   - ErrProviderFailure: the provider answered something that will not
//     get better by retrying (another 4xx, a 2xx whose body lacks the
//     mapped fields). A configuration or contract mismatch: log it, alert.
//
// No token or password ever appears in an error, a log line or a String
// form of the types here: Tokens print their fingerprints only.
package external
