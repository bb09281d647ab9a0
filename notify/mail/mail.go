// Package mail sends the service's email: a Sender port, an SMTP adapter
// (github.com/wneessen/go-mail) configured by one URL, a development
// adapter that writes each message to the log, and the message templates
// (text and HTML, embedded and overridable from a directory).
package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Message is one email to one recipient.
type Message struct {
	To      string
	Subject string
	Text    string
	HTML    string
	// ID is the Message-ID's left part: the event the message was made
	// from, so that a receiver can tell a resent message from a new one.
	ID string
}

// Sender delivers messages. Send may have delivered the message when it
// returns an error (the server took it, the connection broke before the
// answer): callers retry, so delivery is at least once.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// SMTPConfig configures the SMTP adapter.
type SMTPConfig struct {
	// URL is smtp://[user:password@]host[:port] (STARTTLS required; port
	// 587 by default) or smtps://... (implicit TLS; port 465 by default).
	// It may hold credentials: never log it (Redacted gives a safe form).
	URL string
	// From is the envelope and header sender.
	From string
	// RootCAs, when set, are the certificate authorities the server's
	// certificate must chain to (a private relay); nil: the system's.
	RootCAs *x509.CertPool
	// Timeout bounds dialing and each SMTP command (30s when 0).
	Timeout time.Duration
}

// SMTP sends over SMTP, one connection per message.
type SMTP struct {
	cfg  SMTPConfig
	host string
	opts []gomail.Option
}

// NewSMTP validates cfg.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, errors.New("mail: the SMTP URL does not parse") // the error would repeat the URL, credentials and all
	}
	var errs []error
	if cfg.From == "" {
		errs = append(errs, errors.New("mail: a from address is required"))
	} else if err := gomail.NewMsg().From(cfg.From); err != nil {
		errs = append(errs, err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	host, portText := u.Hostname(), u.Port()
	if host == "" {
		errs = append(errs, errors.New("mail: the SMTP URL needs a host"))
	}
	opts := []gomail.Option{gomail.WithTimeout(cfg.Timeout)}
	tc := &tls.Config{ServerName: host, RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
	port := 0
	switch u.Scheme {
	case "smtp":
		port = 587
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory), gomail.WithTLSConfig(tc))
	case "smtps":
		port = 465
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSConfig(tc))
	default:
		errs = append(errs, fmt.Errorf("mail: the SMTP URL's scheme must be smtp (STARTTLS) or smtps (implicit TLS), not %q", u.Scheme))
	}
	if portText != "" {
		if port, err = strconv.Atoi(portText); err != nil || port < 1 || port > 65535 {
			errs = append(errs, errors.New("mail: the SMTP URL's port is invalid"))
		}
	}
	opts = append(opts, gomail.WithPort(port))
	if u.User != nil {
		pw, _ := u.User.Password()
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(u.User.Username()), gomail.WithPassword(pw))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &SMTP{cfg: cfg, host: host, opts: opts}, nil
}

// Redacted is the server's URL without credentials, for logs.
func Redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	return u.Scheme + "://" + net.JoinHostPort(u.Hostname(), u.Port())
}

// Send implements Sender.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg()
	if err := msg.From(s.cfg.From); err != nil {
		return fmt.Errorf("mail: from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return &PermanentError{Err: fmt.Errorf("mail: recipient: %w", err)}
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	if m.ID != "" {
		msg.SetMessageIDWithValue(m.ID + "@authledger")
	} else {
		msg.SetMessageID()
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	c, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return fmt.Errorf("mail: client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		var se *gomail.SendError
		if errors.As(err, &se) && !se.IsTemp() && se.Reason == gomail.ErrSMTPRcptTo {
			return &PermanentError{Err: fmt.Errorf("mail: send: %w", err)}
		}
		return fmt.Errorf("mail: send: %w", err)
	}
	return nil
}

// PermanentError is a message no retry will deliver (the server refused
// the recipient for good): the reactor dead-letters it at once.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Log is the development Sender (no SMTP configured): it writes each
// message, link included, to Out (serve's standard output) as text, and
// notes it in the log.
type Log struct {
	Out    io.Writer
	Logger *slog.Logger
}

// Send implements Sender.
func (l Log) Send(_ context.Context, m Message) error {
	if _, err := fmt.Fprintf(l.Out, "----- mail (no AUTHLEDGER_SMTP_URL: written here, not sent) -----\nTo: %s\nSubject: %s\n\n%s\n-----\n",
		m.To, m.Subject, m.Text); err != nil {
		return err
	}
	l.Logger.Info("mail written to standard output (no AUTHLEDGER_SMTP_URL)", slog.String("to", m.To), slog.String("subject", m.Subject))
	return nil
}
