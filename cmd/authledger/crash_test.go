package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authledger/authledger/test/openapitest"
	"github.com/authledger/authledger/test/pgtest"
)

// serverProcess is `authledger serve` in a process of its own (this test
// binary running main), so that a test can kill it without a chance to
// clean up.
type serverProcess struct {
	t    *testing.T
	env  []string
	base string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

func newServerProcess(t *testing.T, env map[string]string) *serverProcess {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	p := &serverProcess{t: t, base: "http://" + addr}
	p.env = append(os.Environ(), "AUTHLEDGER_TEST_MAIN=1", "AUTHLEDGER_LISTEN="+addr, "AUTHLEDGER_LOG_LEVEL=warn")
	for k, v := range env {
		p.env = append(p.env, k+"="+v)
	}
	t.Cleanup(func() {
		if p.cmd != nil && p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			if err := <-p.done; err != nil {
				t.Logf("server process at the end of the test: %v", err)
			}
		}
	})
	return p
}

// start runs the server and waits until /readyz answers 200.
func (p *serverProcess) start() {
	p.t.Helper()
	p.cmd = exec.Command(os.Args[0], "serve") // #nosec G204 -- this test binary
	p.cmd.Env = p.env
	p.out = &lockedBuffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan error, 1)
	go func() { p.done <- p.cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := client.Get(p.base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-p.done:
			p.t.Fatalf("server exited: %v\n%s", err, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("server not ready:\n%s", p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL: no drain, no deferred clean-up.
func (p *serverProcess) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	if err := <-p.done; err == nil {
		p.t.Fatal("the server exited normally, not killed")
	}
}

// post sends JSON and decodes the answer; err is a transport failure (the
// server died under the request), when nothing is known of its outcome.
func (p *serverProcess) post(ctx context.Context, path string, body any) (int, map[string]any, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	// The server is another process: its answers are checked against
	// openapi.yaml on this side.
	resp, err := (&http.Client{Timeout: 30 * time.Second, Transport: openapitest.Transport(p.t, nil)}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, nil
}

// acked is what the load saw acknowledged: registered accounts, and per
// session the last refresh token the server answered with. A request the
// kill cut off is unknown either way and not counted.
type acked struct {
	mu       sync.Mutex
	accounts []string
	refresh  map[string]string // session id -> last acknowledged refresh token
}

// Kill -9 the server during mixed load (registrations, logins, refreshes),
// start it again: every acknowledged registration can log in, and every
// session's last acknowledged refresh token still refreshes.
func TestACrashLosesNoAcknowledgedRegistrationOrRefresh(t *testing.T) {
	t.Parallel()
	srv := newServerProcess(t, map[string]string{
		"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_DATA_DIR": t.TempDir(),
		"AUTHLEDGER_WORKERS": "0", "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0",
	})
	srv.start()

	const password = "a long enough secret"
	got := &acked{refresh: map[string]string{}}
	ctx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	for c := range 4 {
		load.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				email := fmt.Sprintf("crash-%d-%d@example.com", c, i)
				status, _, err := srv.post(ctx, "/v1/auth/register", map[string]string{"email": email, "password": password, "display_name": "C"})
				if err != nil || status != http.StatusCreated {
					return // the server is gone (or refusing): stop this client
				}
				got.mu.Lock()
				got.accounts = append(got.accounts, email)
				got.mu.Unlock()
				status, tok, err := srv.post(ctx, "/v1/auth/login", map[string]string{"email": email, "password": password})
				if err != nil || status != http.StatusOK {
					return
				}
				sid, rt := tok["session_id"].(string), tok["refresh_token"].(string)
				for range 3 {
					got.mu.Lock()
					got.refresh[sid] = rt
					got.mu.Unlock()
					status, tok, err = srv.post(ctx, "/v1/auth/refresh", map[string]string{"refresh_token": rt})
					if err != nil {
						// Cut off: the rotation may or may not have
						// committed; this session proves nothing.
						got.mu.Lock()
						delete(got.refresh, sid)
						got.mu.Unlock()
						return
					}
					if status != http.StatusOK {
						return
					}
					rt = tok["refresh_token"].(string)
				}
				got.mu.Lock()
				got.refresh[sid] = rt
				got.mu.Unlock()
			}
		})
	}
	// Kill in the middle of the load, once it has acknowledged enough
	// (however slow this machine is today).
	for deadline := time.Now().Add(2 * time.Minute); ; {
		got.mu.Lock()
		accounts, sessions := len(got.accounts), len(got.refresh)
		got.mu.Unlock()
		if accounts >= 12 && sessions >= 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("too little load in two minutes: %d accounts, %d sessions", accounts, sessions)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.kill()
	stopLoad()
	load.Wait()
	got.mu.Lock()
	defer got.mu.Unlock()

	srv.start()
	bg := context.Background()
	for _, email := range got.accounts {
		if status, body, err := srv.post(bg, "/v1/auth/login", map[string]string{"email": email, "password": password}); err != nil || status != http.StatusOK {
			t.Errorf("acknowledged registration %s cannot log in after the crash: %d %v %v", email, status, body, err)
		}
	}
	for sid, rt := range got.refresh {
		if status, body, err := srv.post(bg, "/v1/auth/refresh", map[string]string{"refresh_token": rt}); err != nil || status != http.StatusOK {
			t.Errorf("session %s: the last acknowledged refresh token fails after the crash: %d %v %v", sid, status, body, err)
		}
	}
	t.Logf("after the crash: %d acknowledged registrations and %d sessions' last refresh tokens checked", len(got.accounts), len(got.refresh))
}
