// Package origin carries where a request came from (request id, client IP,
// user agent) through a context.Context, so that commands can fill event
// metadata (correlation id, client IP, user agent) without importing the HTTP
// layer. The HTTP middleware puts it in; nothing else should.
package origin

import "context"

// Origin describes the request that caused the work in a context.
type Origin struct {
	// RequestID is the X-Request-ID of the request: the correlation id of
	// every event the request appends.
	RequestID string
	// ClientIP is the caller's address as resolved from the trusted proxies
	// (AUTHLEDGER_TRUSTED_PROXIES); without trusted proxies it is the peer
	// address, never a client-supplied header.
	ClientIP  string
	UserAgent string
}

type key struct{}

// With returns a context that carries o.
func With(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, key{}, o)
}

// From returns the Origin in ctx; ok is false outside a request (a worker, a
// CLI command), where callers record an empty correlation id.
func From(ctx context.Context) (o Origin, ok bool) {
	o, ok = ctx.Value(key{}).(Origin)
	return o, ok
}
