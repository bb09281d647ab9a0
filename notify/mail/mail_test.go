package mail_test

import (
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/notify/mail"
	"github.com/authledger/authledger/test/smtpserver"
)

func pool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(pem)
	return p
}

// The SMTP adapter delivers over STARTTLS and over implicit TLS, with the
// URL's credentials, to a real server on a socket; it refuses a server
// whose certificate it cannot verify.
func TestSMTPDeliversOverSTARTTLSAndImplicitTLS(t *testing.T) {
	t.Parallel()
	tpl, err := mail.LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := tpl.Render(mail.TemplatePasswordReset, mail.Data{DisplayName: "Ada <3", Email: "ada@example.com",
		Link: "http://x/reset-password#token=abc", Token: "abc", ExpiresIn: "30 minutes", PublicURL: "http://x"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.HTML, "Ada &lt;3") || !strings.Contains(msg.Text, "Ada <3") {
		t.Fatalf("the HTML part must escape and the text part must not: %q / %q", msg.HTML, msg.Text)
	}
	for _, implicit := range []bool{false, true} {
		srv := smtpserver.Start(t, implicit)
		s, err := mail.NewSMTP(mail.SMTPConfig{URL: srv.URL(implicit), From: "noreply@example.com", RootCAs: pool(t, srv.CAFile()), Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		msg.ID = "0190-test"
		if err := s.Send(t.Context(), msg); err != nil {
			t.Fatalf("implicit %v: %v", implicit, err)
		}
		got := srv.WaitFor("ada@example.com", "Reset your password")
		if got.Token() != "abc" || got.From != "noreply@example.com" || !strings.Contains(got.HTML, "Choose a new password") ||
			!strings.Contains(got.MessageID, "0190-test@authledger") {
			t.Fatalf("implicit %v: received %+v", implicit, got)
		}
		// The system's authorities do not know the test certificate.
		untrusting, _ := mail.NewSMTP(mail.SMTPConfig{URL: srv.URL(implicit), From: "noreply@example.com", Timeout: 5 * time.Second})
		if err := untrusting.Send(t.Context(), msg); err == nil {
			t.Fatalf("implicit %v: delivered to an unverified server", implicit)
		}
	}
}

func TestSMTPConfigAndRedaction(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"http://host", "smtp://", "smtp://host:99999"} {
		if _, err := mail.NewSMTP(mail.SMTPConfig{URL: bad, From: "a@b.c"}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := mail.NewSMTP(mail.SMTPConfig{URL: "smtp://u:hunter2@host"}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a missing from address: %v", err)
	}
	if got := mail.Redacted("smtps://user:hunter2@mail.example:465"); got != "smtps://mail.example:465" {
		t.Errorf("Redacted: %q", got)
	}
}

func TestTemplatesAreOverriddenFromADirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/verify_email.txt", []byte("Subject: Bitte bestätigen\n\nHallo {{.DisplayName}}: {{.Link}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tpl, err := mail.LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tpl.Render(mail.TemplateVerifyEmail, mail.Data{DisplayName: "Ada", Email: "a@x", Link: "L"})
	if err != nil || m.Subject != "Bitte bestätigen" || m.Text != "Hallo Ada: L\n" || !strings.Contains(m.HTML, "Confirm my address") {
		t.Fatalf("%+v %v", m, err)
	}
	if err := os.WriteFile(dir+"/password_reset.html", []byte("{{.Nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := mail.LoadTemplates(dir); err == nil {
		t.Fatal("a broken override was accepted")
	}
}
