package config

import (
	"net/url"
	"slices"
	"strings"
	"time"
)

// Account is the configuration of outgoing messages and account security
// (email verification, password policy, the outbox's retries).
type Account struct {
	// SMTPURL is smtp://[user:pass@]host[:port] (STARTTLS) or smtps://
	// (implicit TLS); "" logs each message instead of sending it. It may
	// hold a password: never log it.
	SMTPURL string
	// SMTPCAFile is a PEM file of the authorities the SMTP server's
	// certificate must chain to ("" for the system's).
	SMTPCAFile string
	// MailFrom is the sender address of every message.
	MailFrom string
	// MailTemplates is a directory whose files replace the embedded
	// templates of the same name ("" for none).
	MailTemplates string
	// RequireVerifiedEmail refuses password logins until the address is
	// verified, and makes registration enumeration-safe.
	RequireVerifiedEmail bool
	// PasswordMinLength is the policy's minimum length in characters.
	PasswordMinLength int
	// OutboxMaxAttempts and OutboxBackoff: a message is sent at most that
	// many times, waiting OutboxBackoff after the first failure (doubling,
	// at most an hour), then dead-lettered.
	OutboxMaxAttempts int
	OutboxBackoff     time.Duration
	// The SMS sender (Twilio's Messages API) of the second factors' codes;
	// set when SMSAccountSID is.
	SMSURL        string
	SMSAccountSID string
	SMSAuthToken  string
	SMSFrom       string
	// TermsVersion is the version of the terms of service users must
	// have accepted ("" requires none; ADR 0034).
	TermsVersion string
}

// accountVars are the variables of Account, in the table after the
// identity ones.
var accountVars = []Var{
	{
		Name:        "AUTHLEDGER_SMTP_URL",
		DefaultDoc:  "(none: each message is written to the log, and serve says so at start-up)",
		Description: "SMTP server of outgoing mail: smtp://[user:password@]host[:port] (STARTTLS required, port 587 by default) or smtps://... (implicit TLS, port 465). May hold a password; never logged.",
		set:         func(c *Config, v string) error { c.Account.SMTPURL = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_SMTP_CA_FILE",
		DefaultDoc:  "(none: the system's authorities)",
		Description: "PEM file of the certificate authorities the SMTP server's certificate must chain to (a private relay).",
		set:         func(c *Config, v string) error { c.Account.SMTPCAFile = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_MAIL_FROM",
		Default:     "authledger@localhost",
		Description: "Sender address of every message (verification and reset links, notices).",
		set:         func(c *Config, v string) error { c.Account.MailFrom = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_MAIL_TEMPLATES",
		DefaultDoc:  "(none: the embedded templates)",
		Description: "Directory of mail templates replacing the embedded ones of the same name (NAME.txt starting with a Subject: line, NAME.html; names in docs/security.md); parsed at start-up.",
		set:         func(c *Config, v string) error { c.Account.MailTemplates = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_REQUIRE_VERIFIED_EMAIL",
		Default:     "false",
		Description: "true refuses password logins (401 email-not-verified, after the password checked out) until the address is verified, and answers every registration 202 alike, mailing the owner of a taken address instead (enumeration-safe).",
		set:         boolean(func(c *Config) *bool { return &c.Account.RequireVerifiedEmail }),
	},
	{
		Name:        "AUTHLEDGER_PASSWORD_MIN_LENGTH",
		Default:     "10",
		Description: "Shortest new password in characters (at least 8); new passwords are also checked against the embedded list of common passwords, with no composition rules (NIST SP 800-63B).",
		set:         integer(func(c *Config) *int { return &c.Account.PasswordMinLength }),
	},
	{
		Name:        "AUTHLEDGER_OUTBOX_MAX_ATTEMPTS",
		Default:     "5",
		Description: "Sends of one outgoing message before it is dead-lettered (shown by `authledger projections status`).",
		set:         integer(func(c *Config) *int { return &c.Account.OutboxMaxAttempts }),
	},
	{
		Name:        "AUTHLEDGER_OUTBOX_RETRY_BACKOFF",
		Default:     "30s",
		Description: "Wait after a message's first failed send, doubled after each further one (at most 1h).",
		set:         duration(func(c *Config) *time.Duration { return &c.Account.OutboxBackoff }),
	},
	{
		Name:        "AUTHLEDGER_SMS_URL",
		Default:     "https://api.twilio.com",
		Description: "Origin of the SMS provider's Twilio-shaped Messages API.",
		set:         func(c *Config, v string) error { c.Account.SMSURL = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_SMS_ACCOUNT_SID",
		DefaultDoc:  "(none: no SMS sender)",
		Description: "Account sid of the SMS provider (HTTP basic auth user; the path's account). The second factors' SMS codes go through it; without it they are dead-lettered.",
		set:         func(c *Config, v string) error { c.Account.SMSAccountSID = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_SMS_AUTH_TOKEN",
		DefaultDoc:  "(none)",
		Description: "Auth token of the SMS provider. Secret.",
		set:         func(c *Config, v string) error { c.Account.SMSAuthToken = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_SMS_FROM",
		DefaultDoc:  "(none)",
		Description: "Sending number (E.164) or messaging service sid of the SMS provider.",
		set:         func(c *Config, v string) error { c.Account.SMSFrom = v; return nil },
	},
	{
		Name:        "AUTHLEDGER_TERMS_VERSION",
		DefaultDoc:  "(none: no terms to accept)",
		Description: "Current version of the terms of service (1 to 64 characters). Registration must accept it (terms_version); a password login of a user who has not answers 403 terms-acceptance-required until the login sends accept_terms or the user accepts it with POST /v1/me/consents (docs/gdpr.md).",
		set:         func(c *Config, v string) error { c.Account.TermsVersion = v; return nil },
	},
}

func (a Account) validate(bad func(name, format string, args ...any)) {
	if v := a.TermsVersion; len(v) > 64 || strings.TrimSpace(v) != v {
		bad("AUTHLEDGER_TERMS_VERSION", "must be at most 64 characters without leading or trailing spaces")
	}
	if a.SMTPURL != "" {
		if u, err := url.Parse(a.SMTPURL); err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
			bad("AUTHLEDGER_SMTP_URL", "must be smtp://host[:port] (STARTTLS) or smtps://host[:port] (implicit TLS)")
		}
	}
	if a.MailFrom == "" {
		bad("AUTHLEDGER_MAIL_FROM", "must not be empty")
	}
	if a.PasswordMinLength < 8 || a.PasswordMinLength > 1024 {
		bad("AUTHLEDGER_PASSWORD_MIN_LENGTH", "must be from 8 to 1024")
	}
	if a.OutboxMaxAttempts < 1 || a.OutboxMaxAttempts > 100 {
		bad("AUTHLEDGER_OUTBOX_MAX_ATTEMPTS", "must be from 1 to 100")
	}
	if a.OutboxBackoff <= 0 {
		bad("AUTHLEDGER_OUTBOX_RETRY_BACKOFF", "must be positive")
	}
	if a.SMSAccountSID != "" && (a.SMSAuthToken == "" || a.SMSFrom == "") {
		bad("AUTHLEDGER_SMS_AUTH_TOKEN", "AUTHLEDGER_SMS_AUTH_TOKEN and AUTHLEDGER_SMS_FROM are required with AUTHLEDGER_SMS_ACCOUNT_SID")
	}
}

// init places accountVars after the identity variables, where help and
// the README list them.
func init() {
	at := len(table)
	for i, v := range table {
		if v.Name == "AUTHLEDGER_KNOWN_DEVICE_TTL" {
			at = i + 1
		}
	}
	table = append(table[:at], append(slices.Clone(accountVars), table[at:]...)...)
}
