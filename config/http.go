package config

import "time"

// HTTP bounds what one client can hold of the server (docs/adr/0008): how
// much of a request body is read, how long a connection may take to send
// a request or receive an answer, and how many connections are open.
type HTTP struct {
	// ReadTimeout bounds reading a whole request; net/http also cancels the
	// request's context when it passes, so it bounds a handler too.
	ReadTimeout time.Duration
	// WriteTimeout bounds an answer, from the end of the request headers.
	WriteTimeout time.Duration
	// IdleTimeout bounds a keep-alive connection between requests.
	IdleTimeout time.Duration
	// StreamTimeout replaces both for downloads and exports.
	StreamTimeout time.Duration
	// UploadTimeout replaces both for the multipart upload.
	UploadTimeout time.Duration
	// MaxConnections caps open client connections.
	MaxConnections int
	// AuthMaxBodyBytes bounds the bodies of register, login, refresh and
	// logout; JSONMaxBytes those of every other route but the upload
	// (which AUTHLEDGER_UPLOAD_MAX_REQUEST_BYTES bounds).
	AuthMaxBodyBytes int64
	JSONMaxBytes     int64
}

// maxConnections is the largest accepted AUTHLEDGER_MAX_CONNECTIONS: far
// above what one process serves, low enough to catch a typo of a digit.
const maxConnections = 1_000_000

// validate checks what the durations' positivity (checked with the
// others in Config.Validate) leaves: how the bounds relate.
func (h HTTP) validate(c Config, bad func(name, format string, args ...any)) {
	if h.ReadTimeout > 0 && h.ReadTimeout < c.ReadHeaderTimeout {
		bad("AUTHLEDGER_READ_TIMEOUT", "must be at least AUTHLEDGER_READ_HEADER_TIMEOUT (%s)", c.ReadHeaderTimeout)
	}
	// A query waits up to the consistency bound before it answers: a
	// shorter write or read timeout would cut the 503 it owes.
	if h.WriteTimeout > 0 && h.WriteTimeout <= c.ConsistencyWait {
		bad("AUTHLEDGER_WRITE_TIMEOUT", "must exceed AUTHLEDGER_CONSISTENCY_WAIT (%s)", c.ConsistencyWait)
	}
	if h.ReadTimeout > 0 && h.ReadTimeout <= c.ConsistencyWait {
		bad("AUTHLEDGER_READ_TIMEOUT", "must exceed AUTHLEDGER_CONSISTENCY_WAIT (%s)", c.ConsistencyWait)
	}
	if h.MaxConnections < 1 || h.MaxConnections > maxConnections {
		bad("AUTHLEDGER_MAX_CONNECTIONS", "must be between 1 and %d", maxConnections)
	}
	if h.AuthMaxBodyBytes < 1024 {
		bad("AUTHLEDGER_AUTH_MAX_BODY_BYTES", "must be at least 1024 (a registration body must fit)")
	}
	if h.JSONMaxBytes < 1024 {
		bad("AUTHLEDGER_JSON_MAX_BYTES", "must be at least 1024")
	}
}
