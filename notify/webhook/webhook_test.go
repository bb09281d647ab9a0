package webhook_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/notify/webhook"
)

// The signature is the Standard Webhooks one: the specification's own
// example (secret, id, timestamp, body) gives its published signature.
func TestSignMatchesTheStandardWebhooksExample(t *testing.T) {
	t.Parallel()
	s, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"test": 2432232314}`)
	at := time.Unix(1614265330, 0)
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got := s.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", at, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if err := s.Verify("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,bm9wZQ== "+want, body, at.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("Verify of the example: %v", err)
	}
	for name, c := range map[string]struct{ id, ts, body string }{
		"another body": {"msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", `{"test": 2432232315}`},
		"another id":   {"msg_other", "1614265330", string(body)},
		"an old stamp": {"msg_p5jXN8AQM9LWM0D4loKWxJek", "1614264000", string(body)},
		"no timestamp": {"msg_p5jXN8AQM9LWM0D4loKWxJek", "", string(body)},
	} {
		if err := s.Verify(c.id, c.ts, want, []byte(c.body), at, 5*time.Minute); !errors.Is(err, webhook.ErrSignature) {
			t.Errorf("%s: Verify = %v, want ErrSignature", name, err)
		}
	}
}

// Secrets are derived: the same endpoint and version give the same
// secret, another endpoint or version another, and the shown form parses
// back.
func TestSecretsAreDerivedPerEndpointAndVersion(t *testing.T) {
	t.Parallel()
	if _, err := webhook.NewSecrets(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
	s, err := webhook.NewSecrets([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	a, b := uuid.New(), uuid.New()
	again, err := webhook.NewSecrets([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Derive(a, 1) != again.Derive(a, 1) || s.Derive(a, 1) == s.Derive(b, 1) || s.Derive(a, 1) == s.Derive(a, 2) {
		t.Fatal("derivation is not a function of endpoint and version")
	}
	shown := s.Derive(a, 1).String()
	back, err := webhook.ParseSecret(shown)
	if !strings.HasPrefix(shown, webhook.SecretPrefix) || err != nil || back != s.Derive(a, 1) {
		t.Fatalf("%s parses to %v, %v", shown, back, err)
	}
}

func TestAllowlist(t *testing.T) {
	t.Parallel()
	a, err := webhook.ParseAllowlist(" Receiver.internal ,10.1.0.0/16, 127.0.0.2,::1")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"receiver.internal": true, "RECEIVER.internal": true, "10.1.2.3": true, "127.0.0.2": true, "[::1]": true,
		"10.2.0.1": false, "127.0.0.1": false, "other.internal": false, "localhost": false,
	} {
		if got := a.AllowsHost(host); got != want {
			t.Errorf("AllowsHost(%s) = %v, want %v", host, got, want)
		}
	}
	if _, err := webhook.ParseAllowlist("10.0.0.0/99, a b"); err == nil {
		t.Error("a bad CIDR and a name with a space were accepted")
	}
}

// listener accepts and counts connections on 127.0.0.1: a target that
// must never be reached.
func listener(t *testing.T) (addr string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	n := make(chan int, 1)
	n <- 0
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n <- <-n + 1
			_ = c.Close()
		}
	}()
	return ln.Addr().String(), func() int { v := <-n; n <- v; return v }
}

// Loopback, by address or by a name that resolves to it, is refused in
// the dialer after resolution, before any connection; the allowlist lets
// a named address through.
func TestClientRefusesNonPublicAddressesAfterResolution(t *testing.T) {
	t.Parallel()
	addr, accepted := listener(t)
	_, port, _ := net.SplitHostPort(addr)
	cl := webhook.NewClient(webhook.ClientConfig{Timeout: 5 * time.Second})
	defer cl.Close()
	for _, u := range []string{"http://" + addr + "/", "https://localhost:" + port + "/", "http://[::ffff:127.0.0.1]:" + port + "/"} {
		out := cl.Post(context.Background(), webhook.Delivery{URL: u, ID: "x", At: time.Now(), Body: []byte("{}")})
		var r *webhook.RefusedError
		if !errors.As(out.Err, &r) || r.Why != "loopback" || !webhook.Refused(out.Err) {
			t.Errorf("%s: %+v, want a loopback refusal", u, out)
		}
	}
	if n := accepted(); n != 0 {
		t.Fatalf("the refused target accepted %d connections", n)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://169.254.169.254/", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	allow, _ := webhook.ParseAllowlist("127.0.0.1")
	ok := webhook.NewClient(webhook.ClientConfig{Allow: allow, Timeout: 5 * time.Second})
	defer ok.Close()
	if out := ok.Post(context.Background(), webhook.Delivery{URL: srv.URL + "/", ID: "x", At: time.Now(), Body: []byte("{}")}); out.Err != nil || out.Status != 204 {
		t.Errorf("allowlisted receiver: %+v", out)
	}
	if out := ok.Post(context.Background(), webhook.Delivery{URL: srv.URL + "/redirect", ID: "x", At: time.Now(), Body: []byte("{}")}); out.Err == nil || out.Status != http.StatusFound {
		t.Errorf("a redirect was followed or counted as delivered: %+v", out)
	}
}

func TestClassifiedRanges(t *testing.T) {
	t.Parallel()
	cl := webhook.NewClient(webhook.ClientConfig{Timeout: time.Second})
	defer cl.Close()
	for _, ip := range []string{"10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "fe80::1", "fc00::1", "::1", "64:ff9b::a00:1"} {
		u := "http://" + netip.AddrPortFrom(netip.MustParseAddr(ip), 9).String() + "/"
		out := cl.Post(context.Background(), webhook.Delivery{URL: u, ID: "x", At: time.Now(), Body: []byte("{}")})
		if !webhook.Refused(out.Err) {
			t.Errorf("%s: %v, want a refusal", ip, out.Err)
		}
	}
}
