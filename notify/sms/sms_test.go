package sms_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/authledger/authledger/notify/sms"
)

// fakeTwilio speaks the Messages API's shape on a real socket: it checks
// the path, the basic auth and the form, answers 201 with a message
// resource, or an error document when told to.
type fakeTwilio struct {
	mu       sync.Mutex
	received []map[string]string
	fail     int // status to answer with, 0 for success
}

func (f *fakeTwilio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/AC123/Messages.json" {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"code":20404,"message":"The requested resource was not found","status":404}`))
		return
	}
	if !ok || user != "AC123" || pass != "secret-token" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"code":20003,"message":"Authenticate","status":401}`))
		return
	}
	if err := r.ParseForm(); err != nil || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != 0 {
		w.WriteHeader(f.fail)
		_, _ = w.Write([]byte(`{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}`))
		return
	}
	f.received = append(f.received, map[string]string{"To": r.PostForm.Get("To"), "From": r.PostForm.Get("From"), "Body": r.PostForm.Get("Body")})
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(`{"sid":"SM1","status":"queued","to":"` + r.PostForm.Get("To") + `"}`))
}

func TestTwilioAdapterSpeaksTheMessagesAPI(t *testing.T) {
	t.Parallel()
	fake := &fakeTwilio{}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	s, err := sms.NewTwilio(sms.TwilioConfig{BaseURL: srv.URL, AccountSID: "AC123", AuthToken: "secret-token", From: "+15550001111"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), "+15552223333", "Your code is 123456"); err != nil {
		t.Fatal(err)
	}
	if len(fake.received) != 1 || fake.received[0]["To"] != "+15552223333" || fake.received[0]["From"] != "+15550001111" || fake.received[0]["Body"] != "Your code is 123456" {
		t.Fatalf("received %v", fake.received)
	}

	fake.fail = http.StatusBadRequest
	err = s.Send(t.Context(), "not a number", "x")
	var apiErr *sms.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 21211 || !apiErr.Permanent() {
		t.Fatalf("a refused number: %v", err)
	}
	fake.fail = http.StatusServiceUnavailable
	if err := s.Send(t.Context(), "+15552223333", "x"); !errors.As(err, &apiErr) || apiErr.Permanent() {
		t.Fatalf("a provider outage must be retryable: %v", err)
	}

	wrong, _ := sms.NewTwilio(sms.TwilioConfig{BaseURL: srv.URL, AccountSID: "AC123", AuthToken: "wrong", From: "+15550001111"})
	if err := wrong.Send(t.Context(), "+15552223333", "x"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Fatalf("bad credentials: %v", err)
	}
	srv.Close()
	if err := s.Send(t.Context(), "+15552223333", "x"); err == nil {
		t.Fatal("a closed server was reported as delivered")
	}
}

func TestTwilioConfigReportsEveryProblem(t *testing.T) {
	t.Parallel()
	err := sms.TwilioConfig{BaseURL: "ftp://x"}.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"base URL", "account sid", "from number"} {
		if !contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
