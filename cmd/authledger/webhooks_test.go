package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/notify/webhook"
	"github.com/authledger/authledger/reactors/webhooks"
	"github.com/authledger/authledger/test/pgtest"
)

// received is one request a test receiver got.
type received struct {
	id, timestamp, signature string
	body                     []byte
	answered                 int
}

// receiver is a real HTTP server on loopback answering each request with
// the next status of answers (the last one from then on).
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []received
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		status := answers[min(len(rc.got), len(answers)-1)]
		rc.got = append(rc.got, received{r.Header.Get(webhook.HeaderID), r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, status})
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// waitFor polls cond (every 20ms, for at most 30s) and fails with what
// last says.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// webhookService starts the service with the test receivers' addresses
// allowlisted and a retry schedule of milliseconds.
func webhookService(t *testing.T, allow string) (*running, map[string]string, string) {
	t.Helper()
	db := pgtest.NewDatabase(t)
	envm := map[string]string{"DATABASE_URL": db, "AUTHLEDGER_WEBHOOK_ALLOW_HOSTS": allow,
		"AUTHLEDGER_WEBHOOK_RETRY_SCHEDULE": "30ms,30ms", "AUTHLEDGER_LOG_LEVEL": "warn"}
	r := startServiceWith(t, envm, hooks{webhookPoll: 20 * time.Millisecond})
	access, _ := r.admin(db)
	return r, envm, access
}

func (r *running) registerWebhook(admin, url string, types ...string) (uuid.UUID, string) {
	r.t.Helper()
	status, hdr, body := r.call("POST", "/v1/admin/webhooks", admin, map[string]any{"url": url, "event_types": types})
	if status != http.StatusCreated || hdr.Get("Cache-Control") != "no-store" {
		r.t.Fatalf("register %s: %d %v", url, status, body)
	}
	return uuid.MustParse(body["id"].(string)), body["secret"].(string)
}

func (r *running) deliveries(admin string, id uuid.UUID) []map[string]any {
	r.t.Helper()
	status, _, body := r.call("GET", "/v1/admin/webhooks/"+id.String()+"/deliveries", admin, nil)
	if status != http.StatusOK {
		r.t.Fatalf("deliveries: %d %v", status, body)
	}
	var out []map[string]any
	for _, it := range body["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}

// A receiver that answers 500 and then 200 gets the event twice, with one
// webhook-id, the second time delivered; every request's signature
// verifies under the secret shown at registration, and the body is the
// public CloudEvent. A resend posts it again with the same id; after a
// rotation it is signed under the new and the previous secret. Only
// allowlisted hosts may be registered with http://; bad registrations
// are 400 and other callers 403.
func TestWebhookRetriedDeliveredOnceAndResent(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, http.StatusInternalServerError, http.StatusOK)
	r, _, admin := webhookService(t, "127.0.0.1")

	for name, body := range map[string]map[string]any{
		"http to a host not allowlisted": {"url": "http://example.com/hook", "event_types": []string{"authledger.user.registered.v1"}},
		"a user name in the URL":         {"url": "https://u:p@example.com/hook", "event_types": []string{"authledger.user.registered.v1"}},
		"an internal-only type":          {"url": "https://example.com/hook", "event_types": []string{"authledger.session.refreshed.v1"}},
		"no types":                       {"url": "https://example.com/hook", "event_types": []string{}},
	} {
		status, _, got := r.call("POST", "/v1/admin/webhooks", admin, body)
		if status != http.StatusBadRequest || problemSlug(got) != "invalid-input" {
			t.Errorf("%s: %d %v", name, status, got)
		}
	}
	id, secretText := r.registerWebhook(admin, rc.srv.URL+"/hook", "authledger.user.registered.v1")
	secret, err := webhook.ParseSecret(secretText)
	if err != nil {
		t.Fatal(err)
	}
	user, userID := r.loginAs("webhook-subject@example.com")
	if status, _, _ := r.call("GET", "/v1/admin/webhooks", user, nil); status != http.StatusForbidden {
		t.Errorf("a user listed webhooks: %d", status)
	}

	waitFor(t, "delivered after a 500", func() (bool, string) {
		got := rc.requests()
		return len(got) >= 2 && got[len(got)-1].answered == 200, ""
	})
	got := rc.requests()
	if len(got) != 2 || got[0].id != got[1].id || got[0].id == "" {
		t.Fatalf("requests: %+v", got)
	}
	for i, q := range got {
		if err := secret.Verify(q.id, q.timestamp, q.signature, q.body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("request %d: the signature does not verify: %v", i, err)
		}
	}
	var ev map[string]any
	if err := json.Unmarshal(got[1].body, &ev); err != nil || ev["type"] != "authledger.user.registered.v1" || ev["subject"] != userID.String() || ev["id"] != got[1].id || ev["specversion"] != "1.0" {
		t.Fatalf("body is not the registration's CloudEvent: %v %s", err, got[1].body)
	}
	if strings.Contains(string(got[1].body), "webhook-subject@example.com") {
		t.Errorf("the delivery carries the address: %s", got[1].body)
	}

	var d map[string]any
	waitFor(t, "listed as delivered", func() (bool, string) {
		ds := r.deliveries(admin, id)
		if len(ds) != 1 {
			return false, "deliveries: " + jsonOf(ds)
		}
		d = ds[0]
		return d["state"] == webhooks.StateDelivered, jsonOf(ds)
	})
	if d["id"] != got[0].id || d["attempts"] != 2.0 || d["last_status"] != 200.0 || d["last_error"] != nil {
		t.Errorf("delivery: %v", d)
	}

	if status, _, body := r.call("POST", "/v1/admin/webhooks/"+id.String()+"/deliveries/"+got[0].id+"/resend", admin, nil); status != http.StatusAccepted {
		t.Fatalf("resend: %d %v", status, body)
	}
	waitFor(t, "resent", func() (bool, string) { return len(rc.requests()) == 3, "" })
	if again := rc.requests()[2]; again.id != got[0].id || secret.Verify(again.id, again.timestamp, again.signature, again.body, time.Now(), 5*time.Minute) != nil {
		t.Errorf("resend: %+v", again)
	}
	// A rotated secret: the answer shows the new one; deliveries carry a
	// signature under each, the new one first.
	status, hdr0, rotated := r.call("POST", "/v1/admin/webhooks/"+id.String()+"/rotate-secret", admin, nil)
	if status != http.StatusOK || hdr0.Get("Cache-Control") != "no-store" || rotated["secret_version"] != 2.0 || rotated["secret"] == secretText {
		t.Fatalf("rotate: %d %v", status, rotated)
	}
	newSecret, err := webhook.ParseSecret(rotated["secret"].(string))
	if err != nil {
		t.Fatal(err)
	}
	// The resend may reach the deliverer before the policy has folded the
	// rotation: wait for the endpoint list to show it first.
	waitFor(t, "rotation folded", func() (bool, string) {
		_, _, list := r.call("GET", "/v1/admin/webhooks", admin, nil, "X-Consistency-Token", hdr0.Get("X-Consistency-Token"))
		items, _ := list["items"].([]any)
		return len(items) == 1 && items[0].(map[string]any)["secret_version"] == 2.0, jsonOf(list)
	})
	if status, _, body := r.call("POST", "/v1/admin/webhooks/"+id.String()+"/deliveries/"+got[0].id+"/resend", admin, nil); status != http.StatusAccepted {
		t.Fatalf("resend: %d %v", status, body)
	}
	waitFor(t, "resent after the rotation", func() (bool, string) { return len(rc.requests()) == 4, "" })
	signed := rc.requests()[3]
	sigs := strings.Fields(signed.signature)
	if len(sigs) != 2 {
		t.Fatalf("signatures after a rotation: %q", signed.signature)
	}
	for name, c := range map[string]struct {
		s   webhook.Secret
		sig string
	}{"new": {newSecret, sigs[0]}, "previous": {secret, sigs[1]}} {
		if err := c.s.Verify(signed.id, signed.timestamp, c.sig, signed.body, time.Now(), 5*time.Minute); err != nil {
			t.Errorf("the %s secret does not verify its signature: %v", name, err)
		}
	}

	if status, _, _ := r.call("POST", "/v1/admin/webhooks/"+id.String()+"/deliveries/"+uuid.NewString()+"/resend", admin, nil); status != http.StatusNotFound {
		t.Errorf("resend of no delivery: %d", status)
	}
	if status, _, _ := r.call("GET", "/v1/admin/webhooks/"+uuid.NewString(), admin, nil); status != http.StatusNotFound {
		t.Errorf("an unknown endpoint: %d", status)
	}

	// Deleted: no longer listed, nothing delivered for later events.
	status, hdr, _ := r.call("DELETE", "/v1/admin/webhooks/"+id.String(), admin, nil)
	if status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	_, _, list := r.call("GET", "/v1/admin/webhooks", admin, nil, "X-Consistency-Token", hdr.Get("X-Consistency-Token"))
	if items := list["items"].([]any); len(items) != 0 {
		t.Errorf("a deleted endpoint is listed: %v", items)
	}
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

// closedPort is an address on host where nothing listens.
func closedPort(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// A receiver that is down: retried on the schedule, then dead, listed,
// in `projections status`, and its endpoint disabled with the reason.
// Loopback targets not allowlisted (by address, and by a name that
// resolves to loopback) are refused before any connection: dead at once,
// the endpoint disabled saying why. A disabled endpoint's deliveries are
// not resent until it is enabled.
func TestWebhookDeadLetteredDisabledAndSSRFRefused(t *testing.T) {
	t.Parallel()
	down := closedPort(t, "127.0.0.2")
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	var accepted sync.WaitGroup
	accepts := 0
	var mu sync.Mutex
	accepted.Go(func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepts++
			mu.Unlock()
			_ = c.Close()
		}
	})
	_, port, _ := net.SplitHostPort(target.Addr().String())
	r, envm, admin := webhookService(t, "127.0.0.2")

	downID, _ := r.registerWebhook(admin, "http://"+down+"/hook", "authledger.user.registered.v1")
	byIP, _ := r.registerWebhook(admin, "https://127.0.0.1:"+port+"/hook", "authledger.user.registered.v1")
	byName, _ := r.registerWebhook(admin, "https://localhost:"+port+"/hook", "authledger.user.registered.v1")
	r.loginAs("webhook-down@example.com")

	for _, c := range []struct {
		id       uuid.UUID
		attempts float64
		reason   string
	}{
		{downID, 3, "every delivery failed"},
		{byIP, 1, "loopback"},
		{byName, 1, "loopback"},
	} {
		waitFor(t, "disabled "+c.id.String(), func() (bool, string) {
			_, _, body := r.call("GET", "/v1/admin/webhooks/"+c.id.String(), admin, nil)
			return body["enabled"] == false, jsonOf(body)
		})
		_, _, body := r.call("GET", "/v1/admin/webhooks/"+c.id.String(), admin, nil)
		if reason, _ := body["disabled_reason"].(string); !strings.Contains(reason, c.reason) {
			t.Errorf("%s: disabled_reason %q, want it to say %q", c.id, reason, c.reason)
		}
		waitFor(t, "dead "+c.id.String(), func() (bool, string) {
			ds := r.deliveries(admin, c.id)
			for _, d := range ds {
				if d["state"] == webhooks.StateDead && d["attempts"] == c.attempts && d["last_error"] != nil {
					return true, ""
				}
			}
			return false, jsonOf(ds)
		})
	}
	mu.Lock()
	if accepts != 0 {
		t.Errorf("the refused loopback target accepted %d connections", accepts)
	}
	mu.Unlock()

	s := statusOf(t, envm, webhooks.DeliveriesTable)
	if s.Kind != "webhooks" || s.State != "dead-letters" || s.Webhooks == nil || s.Webhooks.Dead < 3 || s.Webhooks.DisabledEndpoints != 3 || len(s.Webhooks.DeadLetters) < 3 {
		t.Errorf("projections status: %s", jsonOf(s))
	}
	if p := statusOf(t, envm, webhooks.Name); p.Kind != "policy" {
		t.Errorf("the policy in projections status: %s", jsonOf(p))
	}
	if code, out, _ := runCmd(t, envm, "projections", "status"); code != exitOK || !strings.Contains(out, "dead webhook delivery") {
		t.Errorf("status table: %d\n%s", code, out)
	}

	// Events recorded while it is disabled make no delivery for it: a
	// registration now, read with its consistency token, leaves the one
	// registration from before.
	status, hdr, _ := r.call("POST", "/v1/auth/register", "", map[string]string{"email": "while-disabled@example.com", "password": "a long enough secret", "display_name": "T"})
	if status != http.StatusCreated {
		t.Fatalf("register: %d", status)
	}
	status, _, list := r.call("GET", "/v1/admin/webhooks/"+downID.String()+"/deliveries", admin, nil, "X-Consistency-Token", hdr.Get("X-Consistency-Token"))
	if items, _ := list["items"].([]any); status != http.StatusOK || len(items) != 1 {
		t.Errorf("deliveries of the disabled endpoint: %d %v, want the one registration before it", status, list)
	}

	dead := r.deliveries(admin, downID)[0]["id"].(string)
	status, _, body := r.call("POST", "/v1/admin/webhooks/"+downID.String()+"/deliveries/"+dead+"/resend", admin, nil)
	if status != http.StatusConflict || problemSlug(body) != "webhook-disabled" {
		t.Errorf("resend to a disabled endpoint: %d %v", status, body)
	}
	status, _, body = r.call("POST", "/v1/admin/webhooks/"+downID.String()+"/enable", admin, nil)
	if status != http.StatusOK || body["enabled"] != true || body["disabled_reason"] != nil {
		t.Errorf("enable: %d %v", status, body)
	}
	if status, _, body := r.call("POST", "/v1/admin/webhooks/"+downID.String()+"/deliveries/"+dead+"/resend", admin, nil); status != http.StatusAccepted {
		t.Errorf("resend once enabled: %d %v", status, body)
	}
}
