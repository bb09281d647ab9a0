// Package sms sends text messages: a Sender port and one adapter speaking
// Twilio's Messages API (POST /2010-04-01/Accounts/{sid}/Messages.json,
// form-encoded To, From and Body, HTTP basic auth with the account sid
// and auth token). The second factors' codes go through it, from the
// outgoing-message reactor (reactors/outbox).
package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Sender delivers one text message. An error may follow a delivery (the
// answer was lost): callers retry, so delivery is at least once.
type Sender interface {
	Send(ctx context.Context, to, body string) error
}

// TwilioConfig configures the Twilio adapter (AUTHLEDGER_SMS_*).
type TwilioConfig struct {
	// BaseURL is the API's origin, https://api.twilio.com by default (a
	// compatible provider or a test server otherwise).
	BaseURL string
	// AccountSID and AuthToken authenticate; AuthToken is secret.
	AccountSID string
	AuthToken  string
	// From is the sending number (E.164) or messaging service sid.
	From string
	// Timeout bounds each request (10s when 0).
	Timeout time.Duration
}

// Validate reports every problem at once.
func (c TwilioConfig) Validate() error {
	var errs []error
	if u, err := url.Parse(c.BaseURL); c.BaseURL != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
		errs = append(errs, errors.New("sms: the base URL must be an absolute http(s) URL"))
	}
	if c.AccountSID == "" || c.AuthToken == "" {
		errs = append(errs, errors.New("sms: the account sid and auth token are required"))
	}
	if c.From == "" {
		errs = append(errs, errors.New("sms: the from number is required"))
	}
	return errors.Join(errs...)
}

// Twilio sends through the Messages API.
type Twilio struct {
	cfg    TwilioConfig
	client *http.Client
}

// NewTwilio validates cfg.
func NewTwilio(cfg TwilioConfig) (*Twilio, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://api.twilio.com"
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &Twilio{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}}, nil
}

// APIError is an answer other than 2xx, with Twilio's error document
// (code, message) when the body holds one.
type APIError struct {
	Status  int
	Code    int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("sms: provider answered %d (code %d): %s", e.Status, e.Code, e.Message)
}

// Permanent reports an error no retry will fix: a 4xx other than 408 and
// 429 (a bad number, a refused sender, bad credentials).
func (e *APIError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusRequestTimeout && e.Status != http.StatusTooManyRequests
}

// Send implements Sender.
func (t *Twilio) Send(ctx context.Context, to, body string) error {
	form := url.Values{"To": {to}, "From": {t.cfg.From}, "Body": {body}}
	endpoint := t.cfg.BaseURL + "/2010-04-01/Accounts/" + url.PathEscape(t.cfg.AccountSID) + "/Messages.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("sms: request: %w", err)
	}
	req.SetBasicAuth(t.cfg.AccountSID, t.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("sms: send: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	e := &APIError{Status: resp.StatusCode}
	var doc struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &doc) == nil {
		e.Code, e.Message = doc.Code, doc.Message
	}
	return e
}
