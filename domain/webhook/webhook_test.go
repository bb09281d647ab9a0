package webhook_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/domain/webhook"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/events/eventstest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestEventsRoundTripUnderTheirOwnNames(t *testing.T) {
	t.Parallel()
	eventstest.RoundTrip(t, webhook.RegisterEvents, webhook.AllEvents())
}

var rules = webhook.Rules{
	Known: func(t string) bool {
		return t == "authledger.user.registered.v1" || t == "authledger.session.started.v1"
	},
	PlainHTTP: func(host string) bool { return host == "127.0.0.1" },
}

// registered is an endpoint registered and folded again from its events.
func registered(t *testing.T) *webhook.Endpoint {
	t.Helper()
	e, _ := webhook.FromHistory(nil)
	err := e.Register(webhook.Spec{ID: uuid.New(), URL: " HTTPS://Hooks.Example.COM/in?x=1 ",
		EventTypes: []string{"authledger.session.started.v1", "authledger.user.registered.v1", "authledger.session.started.v1"}, By: uuid.New()}, rules, t0)
	if err != nil {
		t.Fatal(err)
	}
	again, err := webhook.FromHistory(e.Changes())
	if err != nil {
		t.Fatal(err)
	}
	return again
}

func TestRegisterNormalizes(t *testing.T) {
	t.Parallel()
	v := registered(t).View()
	if v.URL != "https://hooks.example.com/in?x=1" || strings.Join(v.EventTypes, ",") != "authledger.session.started.v1,authledger.user.registered.v1" ||
		!v.Enabled || v.SecretVersion != 1 || !v.CreatedAt.Equal(t0) {
		t.Fatalf("view %+v", v)
	}
}

func TestRegisterRefuses(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		url    string
		types  []string
		fields []string
	}{
		"plain http":             {"http://hooks.example.com/", []string{"authledger.user.registered.v1"}, []string{"url"}},
		"another scheme":         {"ftp://hooks.example.com/", []string{"authledger.user.registered.v1"}, []string{"url"}},
		"relative":               {"/hooks", []string{"authledger.user.registered.v1"}, []string{"url"}},
		"credentials":            {"https://a:b@hooks.example.com/", []string{"authledger.user.registered.v1"}, []string{"url"}},
		"fragment":               {"https://hooks.example.com/#x", []string{"authledger.user.registered.v1"}, []string{"url"}},
		"too long":               {"https://hooks.example.com/" + strings.Repeat("a", webhook.MaxURLLength), []string{"authledger.user.registered.v1"}, []string{"url"}},
		"unknown type and empty": {"", []string{"authledger.nope.v1"}, []string{"url", "event_types"}},
		"no types":               {"https://hooks.example.com/", nil, []string{"event_types"}},
	} {
		e, _ := webhook.FromHistory(nil)
		err := e.Register(webhook.Spec{ID: uuid.New(), URL: c.url, EventTypes: c.types}, rules, t0)
		var got []string
		for _, fe := range user.FieldErrors(err) {
			got = append(got, fe.Field)
		}
		if strings.Join(got, ",") != strings.Join(c.fields, ",") || len(e.Changes()) != 0 {
			t.Errorf("%s: fields %v (%v), want %v", name, got, err, c.fields)
		}
	}
	e, _ := webhook.FromHistory(nil)
	if err := e.Register(webhook.Spec{ID: uuid.New(), URL: "http://127.0.0.1:9/", EventTypes: []string{"authledger.user.registered.v1"}}, rules, t0); err != nil {
		t.Errorf("http to an allowed host: %v", err)
	}
}

// Disabled keeps its first reason; enabling clears it; a deleted
// endpoint is not found for anything.
func TestDisableEnableDelete(t *testing.T) {
	t.Parallel()
	e := registered(t)
	if err := e.Disable("receiver gone", true, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.Disable("again", false, t0.Add(2*time.Hour)); err != nil || len(e.Changes()) != 1 {
		t.Fatalf("second disable recorded: %v %d", err, len(e.Changes()))
	}
	if v := e.View(); v.Enabled || v.DisabledReason != "receiver gone" || !v.DisabledAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("disabled view %+v", v)
	}
	if err := e.Enable(t0.Add(3 * time.Hour)); err != nil || !e.View().Enabled || e.View().DisabledReason != "" {
		t.Fatalf("enable: %v %+v", err, e.View())
	}
	if err := e.Delete(t0.Add(4 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	history := append([]events.Event{webhook.Registered{WebhookID: e.View().ID, URL: "https://a.example/", EventTypes: []string{"t"}, SecretVersion: 1}}, e.Changes()...)
	folded, err := webhook.FromHistory(history)
	if err != nil || folded.Exists() || folded.Version() != 4 {
		t.Fatalf("a deleted endpoint exists: %v %+v", err, folded.View())
	}
	for name, f := range map[string]func() error{
		"disable": func() error { return folded.Disable("", false, t0) },
		"enable":  func() error { return folded.Enable(t0) },
		"delete":  func() error { return folded.Delete(t0) },
	} {
		if err := f(); err != webhook.ErrNotFound { //nolint:errorlint // the sentinel itself
			t.Errorf("%s on a deleted endpoint: %v", name, err)
		}
	}
	long := registered(t)
	_ = long.Disable(strings.Repeat("é", webhook.MaxReasonBytes), true, t0)
	if r := long.View().DisabledReason; len(r) > webhook.MaxReasonBytes || !strings.HasPrefix(r, "é") {
		t.Errorf("a long reason is %d bytes", len(r))
	}
}

// A rotation makes the next version current and keeps the previous one
// signing for RotationOverlap; a deleted endpoint cannot rotate.
func TestRotateSecret(t *testing.T) {
	t.Parallel()
	e := registered(t)
	if err := e.RotateSecret(t0); err != nil {
		t.Fatal(err)
	}
	if err := e.RotateSecret(t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	v := e.View()
	if v.SecretVersion != 3 || v.PreviousSecretValidUntil == nil || !v.PreviousSecretValidUntil.Equal(t0.Add(time.Hour+webhook.RotationOverlap)) {
		t.Fatalf("after two rotations: %+v", v)
	}
	if err := e.Delete(t0); err != nil {
		t.Fatal(err)
	}
	if err := e.RotateSecret(t0); err != webhook.ErrNotFound { //nolint:errorlint // the sentinel itself
		t.Errorf("rotate a deleted endpoint: %v", err)
	}
}
