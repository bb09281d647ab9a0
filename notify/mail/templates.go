package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"
)

// The messages the service sends; each is a text template NAME.txt (its
// first line "Subject: ...", a blank line, then the body) and an HTML
// template NAME.html.
const (
	TemplateVerifyEmail           = "verify_email"
	TemplateChangeEmail           = "change_email"
	TemplatePasswordReset         = "password_reset"
	TemplatePasswordChanged       = "password_changed"
	TemplateRegistrationAttempted = "registration_attempted"
	TemplateEmailChanged          = "email_changed"
	TemplateMFACode               = "mfa_code"
)

// TemplateNames lists every message.
var TemplateNames = []string{TemplateVerifyEmail, TemplateChangeEmail, TemplatePasswordReset, TemplatePasswordChanged, TemplateRegistrationAttempted, TemplateEmailChanged, TemplateMFACode}

//go:embed templates/*
var embedded embed.FS

// Data is what a template sees.
type Data struct {
	// DisplayName and Email are the recipient's.
	DisplayName string
	Email       string
	// Link is the page that takes the token (the public URL's path with
	// the token in the fragment); Token is the token alone.
	Link  string
	Token string
	// ExpiresIn is the token's lifetime in words ("24 hours").
	ExpiresIn string
	// PublicURL is the server's base URL.
	PublicURL string
	// Reason says why a password changed ("changed" or "reset").
	Reason string
	// NewEmail is the address an account moved to (to its old one).
	NewEmail string
	// Code is a second factor's 6-digit code.
	Code string
}

// Templates are the parsed messages.
type Templates struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

// LoadTemplates parses the embedded templates, each replaced by the file
// of the same name in dir when dir is not "" and holds one (a partial
// override is fine). Every template is parsed at start-up, so a broken
// override fails there, not at the first mail.
func LoadTemplates(dir string) (*Templates, error) {
	t := &Templates{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	var errs []error
	read := func(name string) ([]byte, error) {
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err == nil {
				return b, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
		return embedded.ReadFile("templates/" + name)
	}
	for _, n := range TemplateNames {
		src, err := read(n + ".txt")
		if err == nil {
			if !strings.HasPrefix(string(src), "Subject: ") {
				err = fmt.Errorf("mail: template %s.txt must start with a Subject: line", n)
			} else {
				t.text[n], err = texttemplate.New(n).Option("missingkey=error").Parse(string(src))
			}
		}
		errs = append(errs, err)
		src, err = read(n + ".html")
		if err == nil {
			t.html[n], err = htmltemplate.New(n).Option("missingkey=error").Parse(string(src))
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// Render makes message name for d, addressed to d.Email.
func (t *Templates) Render(name string, d Data) (Message, error) {
	tt, ok := t.text[name]
	if !ok {
		return Message{}, fmt.Errorf("mail: no template %q", name)
	}
	var text, html bytes.Buffer
	if err := tt.Execute(&text, d); err != nil {
		return Message{}, fmt.Errorf("mail: render %s.txt: %w", name, err)
	}
	if err := t.html[name].Execute(&html, d); err != nil {
		return Message{}, fmt.Errorf("mail: render %s.html: %w", name, err)
	}
	subject, body, _ := strings.Cut(text.String(), "\n")
	return Message{To: d.Email, Subject: strings.TrimSpace(strings.TrimPrefix(subject, "Subject: ")),
		Text: strings.TrimLeft(body, "\n"), HTML: html.String()}, nil
}
