package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/testimage"
)

// rejectedWithin fails unless the access token is refused (401) within d
// of the call: the revocation contract is one second on every instance.
func rejectedWithin(t *testing.T, r *running, what, access string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		status, _, body := r.call("GET", "/v1/me", access, nil)
		if status == http.StatusUnauthorized {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the access token is still answered %d %v after %s", what, status, body, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readyz returns /readyz's status and body.
func (r *running) readyz() (int, string) {
	r.t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(r.base + "/readyz")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *running) waitReady(within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		status, body := r.readyz()
		if status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("not ready after %s: %d %s", within, status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unavailable fails unless the answer is 503 problem+json with Retry-After.
func unavailable(t *testing.T, what string, status int, hdr http.Header, body map[string]any) {
	t.Helper()
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" ||
		hdr.Get("Content-Type") != "application/problem+json" || !strings.HasSuffix(body["type"].(string), "/unavailable") {
		t.Errorf("%s during the outage: %d Retry-After=%q %v, want 503 unavailable with Retry-After", what, status, hdr.Get("Retry-After"), body)
	}
}

// PostgreSQL stops for several seconds under a running server and comes
// back. Meanwhile requests answer 503 with Retry-After and /readyz says 503
// naming the revocation feed; afterwards every follower resumes, /readyz is
// 200, and logout, refresh-token reuse and session deletion each revoke
// the session's access tokens within a second, as before the outage.
func TestAfterADatabaseOutageRevocationsStillBiteWithinASecond(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	r := startService(t, map[string]string{"DATABASE_URL": cluster.URL, "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"})
	r.waitReady(30 * time.Second)
	defer func() {
		if t.Failed() {
			t.Log(r.logs.String())
		}
	}()

	email := "outage@example.com"
	access := r.login(email)
	login := func() map[string]any {
		t.Helper()
		status, _, tok := r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a long enough secret"})
		if status != http.StatusOK {
			t.Fatalf("login: %d %v", status, tok)
		}
		return tok
	}
	forLogout, forReuse, forDelete := login(), login(), login()

	cluster.Stop()
	outageStarted := time.Now()
	// Past the revocation set's freshness: the token check has to read the
	// log, which is down.
	time.Sleep(time.Second)
	status, hdr, body := r.call("GET", "/v1/me", access, nil)
	unavailable(t, "GET /v1/me", status, hdr, body)
	status, hdr, body = r.call("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": "a long enough secret"})
	unavailable(t, "login", status, hdr, body)
	status, hdr, body = r.upload(access, "scan.png", testimage.TextPNG(t, "OUTAGE"))
	unavailable(t, "upload", status, hdr, body)
	var readyDuring string
	for time.Since(outageStarted) < 6*time.Second {
		status, b := r.readyz()
		if status != http.StatusServiceUnavailable {
			t.Fatalf("/readyz during the outage: %d %s", status, b)
		}
		readyDuring = b
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(readyDuring, `"revocations":"retrying"`) {
		t.Errorf("/readyz during the outage does not name the revocation feed as retrying: %s", readyDuring)
	}

	cluster.Start()
	r.waitReady(30 * time.Second)
	if _, b := r.readyz(); !strings.Contains(b, `"revocations":"following"`) {
		t.Errorf("/readyz after the outage: the revocation feed is not following: %s", b)
	}

	if status, _, body := r.call("POST", "/v1/auth/logout", forLogout["access_token"].(string), nil); status != http.StatusNoContent {
		t.Fatalf("logout: %d %v", status, body)
	}
	rejectedWithin(t, r, "logout", forLogout["access_token"].(string), time.Second)

	status, _, rotated := r.call("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": forReuse["refresh_token"].(string)})
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, rotated)
	}
	if status, _, body := r.call("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": forReuse["refresh_token"].(string)}); status != http.StatusUnauthorized {
		t.Fatalf("reuse of a rotated refresh token: %d %v", status, body)
	}
	rejectedWithin(t, r, "refresh-token reuse", rotated["access_token"].(string), time.Second)

	own := forDelete["access_token"].(string)
	if status, _, body := r.call("DELETE", "/v1/auth/sessions/"+forDelete["session_id"].(string), own, nil); status != http.StatusNoContent {
		t.Fatalf("delete own session: %d %v", status, body)
	}
	rejectedWithin(t, r, "session deletion", own, time.Second)

	if status, _, body := r.call("GET", "/v1/me", access, nil); status != http.StatusOK {
		t.Errorf("an open session after the outage: %d %v", status, body)
	}
	if logs := r.logs.String(); strings.Contains(logs, "background task stopped") {
		t.Errorf("a background task stopped during the outage:\n%s", logs)
	}
	// The feed is following again; under load it may be between two
	// polls of its catch-up when first asked, so ask until it says so.
	var metrics []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(r.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if strings.Contains(string(metrics), `authledger_follower_following{follower="revocations"} 1`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{`authledger_follower_following{follower="revocations"} 1`, `authledger_follower_retries_total{follower="revocations"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(metrics), `authledger_follower_retries_total{follower="revocations"} 0`) {
		t.Error("the revocation feed's retries during the outage are not counted")
	}
}
