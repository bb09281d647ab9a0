package config

import (
	"net/url"
	"strings"
	"time"
)

// Stream is the analytics stream (package stream, docs/analytics.md): the
// public events published to NATS JetStream. An empty NATSURL publishes
// nothing.
type Stream struct {
	// NATSURL is the NATS server. It may hold credentials: never log it.
	NATSURL string
	// NATSStream is the JetStream stream's name.
	NATSStream string
	// SubjectPrefix starts every subject (prefix + "." + the internal name).
	SubjectPrefix string
	// DuplicateWindow is JetStream's de-duplication window of the stream.
	DuplicateWindow time.Duration
}

func (s Stream) validate(bad func(name, format string, args ...any)) {
	if s.NATSURL != "" {
		// Never quote the value: it may hold credentials.
		for u := range strings.SplitSeq(s.NATSURL, ",") {
			p, err := url.Parse(strings.TrimSpace(u))
			if err != nil || (p.Scheme != "nats" && p.Scheme != "tls") || p.Host == "" {
				bad("AUTHLEDGER_NATS_URL", "must be nats://host:port or tls://host:port (comma-separated for a cluster)")
				break
			}
		}
	}
	if s.NATSStream == "" || strings.ContainsAny(s.NATSStream, ".*> \t") {
		bad("AUTHLEDGER_NATS_STREAM", "must be a stream name without '.', '*', '>' or spaces")
	}
	if p := s.SubjectPrefix; p == "" || strings.ContainsAny(p, "*> \t") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") {
		bad("AUTHLEDGER_NATS_SUBJECT_PREFIX", "must be dot-separated subject tokens without wildcards")
	}
	if s.DuplicateWindow < time.Second {
		bad("AUTHLEDGER_NATS_DUPLICATE_WINDOW", "must be at least 1s")
	}
}
