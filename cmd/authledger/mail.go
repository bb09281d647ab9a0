package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/notify/mail"
	"github.com/authledger/authledger/notify/sms"
	"github.com/authledger/authledger/reactors/outbox"
)

// newMailSender is the SMTP sender of AUTHLEDGER_SMTP_URL, or, without
// one, the development sender that writes each message to the log (and
// says so now, at start-up).
func newMailSender(cfg config.Config, log *slog.Logger, h hooks) (mail.Sender, error) {
	if cfg.Account.SMTPURL == "" {
		log.Warn("no AUTHLEDGER_SMTP_URL: outgoing mail (verification and reset links) is written to standard output, not sent")
		out := h.mailOut
		if out == nil {
			out = os.Stdout
		}
		return mail.Log{Out: out, Logger: log}, nil
	}
	sc := mail.SMTPConfig{URL: cfg.Account.SMTPURL, From: cfg.Account.MailFrom}
	if f := cfg.Account.SMTPCAFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("AUTHLEDGER_SMTP_CA_FILE: %w", err)
		}
		sc.RootCAs = x509.NewCertPool()
		if !sc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, errors.New("AUTHLEDGER_SMTP_CA_FILE: no PEM certificate in the file")
		}
	}
	s, err := mail.NewSMTP(sc)
	if err != nil {
		return nil, fmt.Errorf("AUTHLEDGER_SMTP_URL: %w", err)
	}
	log.Info("outgoing mail over SMTP", slog.String("server", mail.Redacted(cfg.Account.SMTPURL)), slog.String("from", cfg.Account.MailFrom))
	return s, nil
}

// newSMSSender is the Twilio-shaped sender of AUTHLEDGER_SMS_*, nil when
// none is configured (SMS codes are then dead-lettered). It sends the
// second factors' codes; a broken configuration fails at start-up.
func newSMSSender(cfg config.Config) (sms.Sender, error) {
	a := cfg.Account
	if a.SMSAccountSID == "" {
		return nil, nil
	}
	s, err := sms.NewTwilio(sms.TwilioConfig{BaseURL: a.SMSURL, AccountSID: a.SMSAccountSID, AuthToken: a.SMSAuthToken, From: a.SMSFrom})
	if err != nil {
		return nil, fmt.Errorf("AUTHLEDGER_SMS_*: %w", err)
	}
	return s, nil
}

// newDeliverer builds the outbox's deliverer: templates, the mail sender,
// the retry policy.
func newDeliverer(cfg config.Config, db *pgxpool.Pool, ident *identityCore, log *slog.Logger, h hooks) (*outbox.Deliverer, error) {
	templates, err := mail.LoadTemplates(cfg.Account.MailTemplates)
	if err != nil {
		return nil, fmt.Errorf("AUTHLEDGER_MAIL_TEMPLATES: %w", err)
	}
	sender, err := newMailSender(cfg, log, h)
	if err != nil {
		return nil, err
	}
	texts, err := newSMSSender(cfg)
	if err != nil {
		return nil, err
	}
	return outbox.NewDeliverer(outbox.DeliveryConfig{
		Pool: db, Users: ident.users, Mail: sender, SMS: texts, Minter: ident.minter, Templates: templates, PublicURL: cfg.PublicURL,
		MaxAttempts: cfg.Account.OutboxMaxAttempts, Backoff: cfg.Account.OutboxBackoff, Poll: h.outboxPoll, Now: h.clock, Logger: log,
	})
}
