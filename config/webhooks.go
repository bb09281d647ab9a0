package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/authledger/authledger/notify/webhook"
)

// Webhooks is the delivery of webhooks (reactors/webhooks,
// docs/webhooks.md).
type Webhooks struct {
	// AllowHosts are the host names, IPs and CIDRs deliveries may reach
	// though they are not public addresses, and that may be registered
	// with http:// (webhook.ParseAllowlist).
	AllowHosts string
	// RetrySchedule is the wait before each retry of a failed delivery.
	RetrySchedule []time.Duration
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
}

// Allowlist is AllowHosts parsed (validated at Load).
func (w Webhooks) Allowlist() webhook.Allowlist {
	a, _ := webhook.ParseAllowlist(w.AllowHosts)
	return a
}

func (w *Webhooks) setSchedule(v string) error {
	w.RetrySchedule = nil
	for item := range strings.SplitSeq(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(item))
		if err != nil {
			return fmt.Errorf("%q is not a duration (like 5s, 5m, 2h)", item)
		}
		w.RetrySchedule = append(w.RetrySchedule, d)
	}
	return nil
}

func (w Webhooks) validate(bad func(name, format string, args ...any)) {
	if _, err := webhook.ParseAllowlist(w.AllowHosts); err != nil {
		bad("AUTHLEDGER_WEBHOOK_ALLOW_HOSTS", "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if len(w.RetrySchedule) == 0 || len(w.RetrySchedule) > 20 {
		bad("AUTHLEDGER_WEBHOOK_RETRY_SCHEDULE", "must list from 1 to 20 waits")
	}
	for _, d := range w.RetrySchedule {
		if d <= 0 {
			bad("AUTHLEDGER_WEBHOOK_RETRY_SCHEDULE", "every wait must be positive")
			break
		}
	}
	if w.Timeout <= 0 || w.Timeout > time.Minute {
		bad("AUTHLEDGER_WEBHOOK_TIMEOUT", "must be positive and at most 1m")
	}
}
