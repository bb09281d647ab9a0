package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/authledger/authledger/migrations"
)

// ServerConfig says which server a section runs and how.
type ServerConfig struct {
	// DatabaseURL names the PostgreSQL server; the section migrates a
	// scratch database of its own there.
	DatabaseURL string
	// Server is the authledger binary run as `Server serve` (default:
	// DefaultServer). The benchmarks are not linked into it (ADR 0024).
	Server string
	// Env is added to the server's environment after the section's own
	// settings (a later entry wins): tests set AUTHLEDGER_TEST_MAIN there.
	Env []string
	// Stderr receives the server's warnings and errors (default: discarded).
	Stderr io.Writer
}

// DefaultServer is the server binary a section runs when none is given:
// the `authledger` beside the running benchmark binary (`make bench`
// builds both into bin/).
func DefaultServer() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(filepath.Dir(self), "authledger")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("no server binary at %s: build it (make build) or name one with -server", bin)
	}
	return bin, nil
}

// scratch is what a section running the service needs of its own: a
// migrated scratch database, a temporary data directory, a master key.
type scratch struct {
	dbURL, dir, masterKey string
	cleanup               []func()
}

// undo removes what newScratch made, last first.
func (s *scratch) undo() {
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
}

// newScratch makes a scratch beside the database of baseURL; on error it
// leaves nothing behind.
func newScratch(ctx context.Context, baseURL string) (_ *scratch, err error) {
	s := &scratch{}
	defer func() {
		if err != nil {
			s.undo()
		}
	}()
	dbURL, drop, err := ScratchDatabase(ctx, baseURL)
	if err != nil {
		return nil, err
	}
	s.dbURL, s.cleanup = dbURL, append(s.cleanup, drop)
	if err := migrations.Migrate(ctx, dbURL); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if s.dir, err = os.MkdirTemp("", "authledger-bench-"); err != nil {
		return nil, err
	}
	s.cleanup = append(s.cleanup, func() { _ = os.RemoveAll(s.dir) })
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return nil, err
	}
	s.masterKey = base64.StdEncoding.EncodeToString(key[:])
	return s, nil
}

// serveProcess is `authledger serve` as its own process on a loopback
// port, in a scratch database and data directory, measured as a client
// sees it.
type serveProcess struct {
	cmd *exec.Cmd
	// addr is the host:port it listens on; dbURL its scratch database.
	addr, dbURL string
	// desc says what ran: the binary when given, and the settings of Env.
	desc string
	stop func()
}

// startServe starts the server with the section's settings (vars, then
// cfg.Env) and returns once /readyz answers 200. stop interrupts it and
// removes the scratch.
func startServe(ctx context.Context, cfg ServerConfig, vars []string) (_ *serveProcess, err error) {
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	// Everything acquired is undone in sc, last first: by stop, or here
	// on error.
	sc, err := newScratch(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			sc.undo()
		}
	}()
	bin := cfg.Server
	if bin == "" {
		if bin, err = DefaultServer(); err != nil {
			return nil, err
		}
	}
	cmd := exec.CommandContext(ctx, bin, "serve") //nolint:gosec // the binary is the operator's -server or the one beside this
	cmd.Env = append(append([]string{
		"PATH=" + os.Getenv("PATH"),
		"DATABASE_URL=" + sc.dbURL,
		"AUTHLEDGER_DATA_DIR=" + sc.dir,
		"AUTHLEDGER_MASTER_KEY=" + sc.masterKey,
		"AUTHLEDGER_LISTEN=127.0.0.1:0",
		"AUTHLEDGER_MIGRATE_ON_START=false",
		// No OCR competing for the two cores while the service is measured.
		"AUTHLEDGER_WORKERS=0",
		"AUTHLEDGER_RATE_LIMIT_PER_SECOND=0",
		// The limits section probes one account with a login every 500 ms.
		"AUTHLEDGER_ACCOUNT_RATE_LIMIT_PER_SECOND=0",
		"AUTHLEDGER_LOG_FORMAT=json",
	}, vars...), cfg.Env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	exited := make(chan struct{})
	sc.cleanup = append(sc.cleanup, func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	addr := make(chan string, 1)
	go func() {
		defer close(exited)
		lines := bufio.NewScanner(stderr)
		lines.Buffer(make([]byte, 64<<10), 1<<20)
		for lines.Scan() {
			var line struct {
				Msg, Level, Addr string
			}
			// The server's own log lines, not events: read them as JSON.
			if json.Unmarshal(lines.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.Addr
			}
			if line.Level == "WARN" || line.Level == "ERROR" {
				fmt.Fprintln(cfg.Stderr, lines.Text())
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
	p := &serveProcess{cmd: cmd, dbURL: sc.dbURL, stop: sc.undo}
	select {
	case p.addr = <-addr:
	case <-exited:
		return nil, errors.New("serve exited before listening")
	case <-time.After(time.Minute):
		return nil, errors.New("serve did not listen within a minute")
	}
	probe := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/readyz", nil)
		if err != nil {
			return nil, err
		}
		if resp, err := probe.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return nil, errors.New("serve not ready within a minute")
		}
	}
	p.desc = "defaults"
	for _, e := range cfg.Env {
		if strings.HasPrefix(e, "AUTHLEDGER_") {
			p.desc += ", " + e
		}
	}
	if cfg.Server != "" {
		p.desc = cfg.Server + ", " + p.desc
	}
	return p, nil
}
