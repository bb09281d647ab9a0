package identity_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/httpapi/identity"
	"github.com/authledger/authledger/test/identitytest"
)

// The login throttle through the real engine and a real PostgreSQL log
// (docs/login-throttling.md): strangers are slowed per account and source,
// never the owner; unknown addresses look exactly like accounts; a success
// resets its source; a known device gets in while strangers wait.

const rightPassword = "the right password"

// stoppedClock stops the login clock once the stack is built (its signing
// key is active from then on), so that waits are exact.
func stoppedClock() serverOption {
	return func(st *identitytest.Stack, _ *identity.Deps) {
		now := time.Now()
		st.Login.Now = func() time.Time { return now }
	}
}

func (c client) register(email string) {
	c.t.Helper()
	if resp, body := c.do("POST", "/v1/auth/register", "", map[string]string{"email": email, "password": rightPassword, "display_name": "T"}); resp.StatusCode != http.StatusCreated {
		c.t.Fatalf("register %s: %d %v", email, resp.StatusCode, body)
	}
}

// login tries email and password from the client address ip; extra are
// more headers.
func (c client) login(email, password, ip string, body map[string]string, extra ...string) (reply, map[string]any) {
	c.t.Helper()
	b := map[string]string{"email": email, "password": password}
	for k, v := range body {
		b[k] = v
	}
	return c.do("POST", "/v1/auth/login", "", b, append([]string{"X-Forwarded-For", ip}, extra...)...)
}

// fail makes n wrong-password attempts and wants each answered with status.
func (c client) fail(email, ip string, n, status int) {
	c.t.Helper()
	for i := range n {
		if resp, body := c.login(email, "not the password", ip, nil); resp.StatusCode != status {
			c.t.Fatalf("wrong password %d for %s from %s: %d %v, want %d", i+1, email, ip, resp.StatusCode, body, status)
		}
	}
}

// Before the throttle, five wrong passwords from anyone locked the account
// for its owner too (and a success did not reset the count).
func TestAStrangerCannotLockTheOwnerOut(t *testing.T) {
	t.Parallel()
	c := newServer(t, stoppedClock())
	c.register("victim@example.com")
	c.fail("victim@example.com", "198.51.100.7", 5, http.StatusUnauthorized)
	// The stranger is slowed down: 429, without the password being
	// checked (the right one gets the same answer).
	for _, pw := range []string{"still not it", rightPassword} {
		resp, body := c.login("victim@example.com", pw, "198.51.100.7", nil)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" ||
			!strings.HasSuffix(fmt.Sprint(body["type"]), "/rate-limited") {
			t.Fatalf("sixth attempt from the stranger: %d %q %v", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	// The owner, elsewhere, is not.
	if resp, body := c.login("victim@example.com", rightPassword, "203.0.113.9", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the owner's login during the attack: %d %v", resp.StatusCode, body)
	}
}

func TestASuccessResetsItsSourcesCount(t *testing.T) {
	t.Parallel()
	c := newServer(t, stoppedClock())
	c.register("typo@example.com")
	for range 3 {
		c.fail("typo@example.com", "192.0.2.10", 4, http.StatusUnauthorized)
		if resp, body := c.login("typo@example.com", rightPassword, "192.0.2.10", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("login after four typos: %d %v", resp.StatusCode, body)
		}
	}
	c.fail("typo@example.com", "192.0.2.10", 5, http.StatusUnauthorized)
	if resp, _ := c.login("typo@example.com", rightPassword, "192.0.2.10", nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a sixth attempt after five failures since the last success: %d", resp.StatusCode)
	}
}

// Throttling must not tell whether an account exists: an unknown address
// gets the same answers, with the same wait, after the same failures.
func TestThrottlingAnUnknownAddressLooksTheSame(t *testing.T) {
	t.Parallel()
	c := newServer(t, stoppedClock())
	c.register("real@example.com")
	answers := map[string][]string{}
	for _, email := range []string{"real@example.com", "nobody@example.com"} {
		for range 8 {
			resp, body := c.login(email, "not the password", "192.0.2.20", nil)
			delete(body, "instance")
			answers[email] = append(answers[email], fmt.Sprintf("%d %q %v", resp.StatusCode, resp.Header.Get("Retry-After"), body))
		}
	}
	real, unknown := answers["real@example.com"], answers["nobody@example.com"]
	if fmt.Sprint(real) != fmt.Sprint(unknown) {
		t.Fatalf("an account and an unknown address answer differently:\n%s\n%s", strings.Join(real, "\n"), strings.Join(unknown, "\n"))
	}
	if !strings.HasPrefix(real[5], "429 \"1\"") || !strings.HasPrefix(real[4], "401") {
		t.Fatalf("the sixth attempt is not throttled: %s", strings.Join(real, "\n"))
	}
}

// Failures spread over many addresses slow every new address down, the
// owner's new ones too, but not a device the owner logged in from before:
// its device token (cookie or body) gets it in.
func TestAKnownDeviceGetsInWhileStrangersAreThrottled(t *testing.T) {
	t.Parallel()
	c := newServer(t, stoppedClock())
	c.register("owner@example.com")
	resp, first := c.login("owner@example.com", rightPassword, "192.0.2.30", nil)
	device, _ := first["device_token"].(string)
	cookie := ""
	for _, ck := range (&http.Response{Header: resp.Header}).Cookies() {
		if ck.Name == identity.DeviceCookie {
			cookie = ck.Value
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/v1/auth/login" || ck.MaxAge <= 0 {
				t.Errorf("device cookie %+v", ck)
			}
		}
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(device, "dev_") || cookie != device {
		t.Fatalf("first login: %d, device token %q, cookie %q", resp.StatusCode, device, cookie)
	}
	// Twenty failures from four addresses: the account's threshold.
	for i := range 4 {
		c.fail("owner@example.com", fmt.Sprintf("198.51.100.%d", i+1), 5, http.StatusUnauthorized)
	}
	if resp, body := c.login("owner@example.com", rightPassword, "203.0.113.50", nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a new address during the spread attack: %d %v", resp.StatusCode, body)
	}
	if resp, body := c.login("owner@example.com", rightPassword, "203.0.113.50", map[string]string{"device_token": "dev_forged"}); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a forged device token: %d %v", resp.StatusCode, body)
	}
	if resp, body := c.login("owner@example.com", rightPassword, "203.0.113.50", map[string]string{"device_token": device}); resp.StatusCode != http.StatusOK {
		t.Fatalf("the known device (body): %d %v", resp.StatusCode, body)
	}
	// Behind an attacker's address, with the cookie.
	if resp, body := c.login("owner@example.com", rightPassword, "198.51.100.1", nil, "Cookie", identity.DeviceCookie+"="+cookie); resp.StatusCode != http.StatusOK {
		t.Fatalf("the known device (cookie) behind a throttled address: %d %v", resp.StatusCode, body)
	}
	// Another user's device token proves nothing for this account.
	c.register("other@example.com")
	_, o := c.login("other@example.com", rightPassword, "192.0.2.31", nil)
	if resp, body := c.login("owner@example.com", rightPassword, "203.0.113.50", map[string]string{"device_token": o["device_token"].(string)}); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("another user's device token: %d %v", resp.StatusCode, body)
	}
}
