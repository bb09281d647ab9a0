package bench

// limits.go is the `limits` section of `authledger-bench` (issue
// 25): `authledger serve` as a process of its own, in a scratch database,
// under the loads an anonymous client can impose (a 300 MB body, a
// thousand slow connections), beside the same server idle. Each row
// prints the server's peak resident memory during the row and how health
// checks and logins on new connections were answered meanwhile.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/authledger/authledger/bench/loadgen"
)

// LimitsConfig bounds the limits section; zero fields take defaults.
type LimitsConfig struct {
	ServerConfig
	// Hold is how long each row's load lasts (default 5s; at least 1s).
	Hold time.Duration
	// Slow is the slow connections of the held row (default 1000); the
	// row past the cap opens twice as many.
	Slow int
	// BodyBytes is the size of the oversized bodies (default 300 MB).
	BodyBytes int64
	// RedisURL, when set, adds the Redis row to the rate-limit table.
	RedisURL string
}

func (c LimitsConfig) withDefaults() LimitsConfig {
	c.Hold = max(c.Hold, time.Second)
	if c.Slow <= 0 {
		c.Slow = 1000
	}
	if c.BodyBytes <= 0 {
		c.BodyBytes = 300_000_000
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	return c
}

// Limits runs the section and prints its table to w.
func Limits(ctx context.Context, w io.Writer, cfg LimitsConfig) error {
	cfg = cfg.withDefaults()
	srv, err := startLimitsServer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bench: limits: %w", err)
	}
	defer srv.stop()
	const email, pw = "limits@bench.example", "a long enough bench secret"
	if err := srv.post("/v1/auth/register", fmt.Sprintf(`{"email":%q,"password":%q,"display_name":"L"}`, email, pw), http.StatusCreated); err != nil {
		return fmt.Errorf("bench: limits: %w", err)
	}
	login := fmt.Sprintf(`{"email":%q,"password":%q}`, email, pw)

	type phase struct {
		name string
		load func(ctx context.Context) (string, error)
	}
	phases := []phase{
		{"idle", func(context.Context) (string, error) { return "", nil }},
		{fmt.Sprintf("login body of %s, Content-Length", mb(cfg.BodyBytes)), func(ctx context.Context) (string, error) {
			return srv.bigBody(ctx, cfg.BodyBytes, false)
		}},
		{fmt.Sprintf("login body of %s, chunked", mb(cfg.BodyBytes)), func(ctx context.Context) (string, error) {
			return srv.bigBody(ctx, cfg.BodyBytes, true)
		}},
		{fmt.Sprintf("%d slow connections held", cfg.Slow), func(ctx context.Context) (string, error) {
			return srv.slowConns(ctx, cfg.Slow, cfg.Hold)
		}},
		{fmt.Sprintf("%d slow connections", 2*cfg.Slow), func(ctx context.Context) (string, error) {
			return srv.slowConns(ctx, 2*cfg.Slow, cfg.Hold)
		}},
	}
	// A row of the idle load first, not printed: the first logins of a
	// fresh process grow its heap (argon2id takes 19 MiB a hash), which
	// would otherwise count against whichever row came first.
	if _, err := srv.measure(ctx, "warm-up", cfg.Hold, login, phases[0].load); err != nil {
		return fmt.Errorf("bench: limits: warm-up: %w", err)
	}
	var rows []limitsRow
	for _, p := range phases {
		row, err := srv.measure(ctx, p.name, cfg.Hold, login, p.load)
		if err != nil {
			return fmt.Errorf("bench: limits: %s: %w", p.name, err)
		}
		rows = append(rows, row)
	}

	fmt.Fprintf(w, "\n## Bounds under abuse (`authledger serve` as its own process, %s; each row %s; health and login probes on new connections)\n",
		srv.desc, cfg.Hold)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\tpeak RSS\tvs idle\thealthz answered\thealthz p50\thealthz max\tlogins answered\tlogin max\tload\t")
	idle := rows[0].peak
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%+.1f MB\t%d/%d\t%s\t%s\t%d/%d\t%s\t%s\t\n", r.name, mb(r.peak), float64(r.peak-idle)/1e6,
			r.health.ok, r.health.n, benchMS(r.health.p50()), benchMS(r.health.max()), r.login.ok, r.login.n, benchMS(r.login.max()), r.detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nPeak RSS is the server process's VmHWM over the row (reset before each). The load column is what the load saw: "+
		"the oversized body's answer and its time, the slow connections the server still held at the end of the row, and how many it closed to make room.")
	return rateLimitRows(ctx, w, cfg.Hold, cfg.RedisURL)
}

type limitsRow struct {
	name          string
	peak          int64
	health, login *probes
	detail        string
}

// probes are the answer times of requests made during a row.
type probes struct {
	mu    sync.Mutex
	n, ok int
	times []time.Duration
}

func (p *probes) add(d time.Duration, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if ok {
		p.ok++
		p.times = append(p.times, d)
	}
}

func (p *probes) p50() time.Duration {
	return loadgen.Summarise(slices.Clone(p.times), 0).P50
}

func (p *probes) max() time.Duration {
	if len(p.times) == 0 {
		return 0
	}
	return slices.Max(p.times)
}

// limitsServer is the serve process under measurement.
type limitsServer struct {
	*serveProcess
	// probe makes one request per connection, as a client arriving
	// during the load does.
	probe *http.Client
}

func startLimitsServer(ctx context.Context, cfg LimitsConfig) (*limitsServer, error) {
	p, err := startServe(ctx, cfg.ServerConfig, nil)
	if err != nil {
		return nil, err
	}
	return &limitsServer{serveProcess: p,
		probe: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}, nil
}

func (s *limitsServer) request(ctx context.Context, method, path, body string) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.addr+path, strings.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	resp, err := s.probe.Do(req)
	if err != nil {
		return 0, time.Since(start), err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, time.Since(start), nil
}

func (s *limitsServer) post(path, body string, want int) error {
	st, _, err := s.request(context.Background(), http.MethodPost, path, body)
	if err == nil && st != want {
		err = fmt.Errorf("POST %s answered %d, want %d", path, st, want)
	}
	return err
}

// measure runs load for a row while probing health (every 100 ms) and
// logins (every 500 ms), and reads the server's peak memory over it.
func (s *limitsServer) measure(ctx context.Context, name string, hold time.Duration, login string, load func(context.Context) (string, error)) (limitsRow, error) {
	row := limitsRow{name: name, health: &probes{}, login: &probes{}}
	peak := newPeakRSS(s.cmd.Process.Pid)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	every := func(d time.Duration, fn func()) {
		wg.Go(func() {
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				fn()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	every(100*time.Millisecond, func() {
		st, d, err := s.request(context.WithoutCancel(ctx), http.MethodGet, "/healthz", "")
		row.health.add(d, err == nil && st == http.StatusOK)
	})
	every(500*time.Millisecond, func() {
		st, d, err := s.request(context.WithoutCancel(ctx), http.MethodPost, "/v1/auth/login", login)
		row.login.add(d, err == nil && st == http.StatusOK)
	})
	type result struct {
		detail string
		err    error
	}
	loadDone := make(chan result, 1)
	start := time.Now()
	go func() {
		d, err := load(ctx)
		loadDone <- result{d, err}
	}()
	var err error
	select {
	case r := <-loadDone:
		row.detail, err = r.detail, r.err
		// The oversized bodies end early; the probes go on to the end.
		time.Sleep(time.Until(start.Add(hold)))
	case <-time.After(hold + 5*time.Minute):
		err = errors.New("the load did not end")
	}
	cancel()
	wg.Wait()
	row.peak = peak.stop()
	return row, err
}

// bigBody sends a login body of n bytes (a JSON string that never ends,
// from one reused buffer) and returns how the server answered and when.
func (s *limitsServer) bigBody(ctx context.Context, n int64, chunked bool) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	head := "POST /v1/auth/login HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
	if chunked {
		head += "Transfer-Encoding: chunked\r\n\r\n"
	} else {
		head += "Content-Length: " + strconv.FormatInt(n, 10) + "\r\n\r\n"
	}
	start := time.Now()
	answered := make(chan string, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			answered <- fmt.Sprintf("no answer (%v)", err)
			return
		}
		_ = resp.Body.Close()
		answered <- fmt.Sprintf("%d after %s", resp.StatusCode, benchMS(time.Since(start)))
	}()
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = 'a'
	}
	w := bufio.NewWriterSize(c, 128<<10)
	_, _ = w.WriteString(head)
	if chunked {
		fmt.Fprintf(w, "%x\r\n", n)
	}
	_, _ = w.WriteString(`{"email":"`)
	sent := int64(0)
	for sent < n-10 {
		k, err := w.Write(buf[:min(int64(len(buf)), n-10-sent)])
		sent += int64(k)
		if err != nil {
			break // the server closed the connection: it read no further
		}
	}
	if chunked {
		_, _ = w.WriteString("\r\n0\r\n\r\n")
	}
	_ = w.Flush()
	select {
	case a := <-answered:
		return fmt.Sprintf("%s, %s sent", a, mb(sent)), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// slowConns opens n connections that send their request a byte at a time
// (half the headers, half the body of a login), holds them for hold, and
// reports how many the server still held and how many it closed to make
// room.
func (s *limitsServer) slowConns(ctx context.Context, n int, hold time.Duration) (string, error) {
	before, err := s.connMetrics(ctx)
	if err != nil {
		return "", err
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	var d net.Dialer
	for i := range n {
		c, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return "", fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
		head := "POST /v1/auth/login HTTP/1.1\r\nHost: bench\r\n"
		if i%2 == 1 {
			head += "Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{"
		}
		_, _ = io.WriteString(c, head)
	}
	// One byte a second on each: slow, never silent.
	deadline := time.Now().Add(hold)
	for tick := time.NewTicker(time.Second); time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
		}
		for i, c := range conns {
			b := "X"
			if i%2 == 1 {
				b = " "
			}
			_, _ = io.WriteString(c, b)
		}
	}
	after, err := s.connMetrics(ctx)
	if err != nil {
		return "", err
	}
	open, ok := after["open"]
	if !ok {
		return "the server counts no connections", nil
	}
	// The /metrics request is one of the open connections.
	return fmt.Sprintf("%.0f open at the end, %.0f closed to make room", open-1, after["evicted"]-before["evicted"]), nil
}

// connMetrics reads the connection counters from /metrics (a server
// without them, an older build, reports none).
func (s *limitsServer) connMetrics(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	// At the cap, the server may close this connection to make room
	// before it has read the request (that is the cap working): ask again.
	var resp *http.Response
	for attempt := 1; ; attempt++ {
		if resp, err = s.probe.Do(req); err == nil || attempt == 5 || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		for key, metric := range map[string]string{"open": "authledger_http_connections_open", "evicted": "authledger_http_connections_evicted_total"} {
			if name == metric {
				out[key], _ = strconv.ParseFloat(val, 64)
			}
		}
	}
	return out, sc.Err()
}

// peakRSS follows a process's peak resident memory from now on: the
// kernel's high-water mark (VmHWM), reset through clear_refs; where that
// reset is not allowed, the largest VmRSS sampled every 10 ms.
type peakRSS struct {
	pid    int
	reset  bool
	done   chan struct{}
	wg     sync.WaitGroup
	sample int64
}

func newPeakRSS(pid int) *peakRSS {
	p := &peakRSS{pid: pid, done: make(chan struct{})}
	p.reset = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	p.wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if v := procStatus(pid, "VmRSS:"); v > p.sample {
				p.sample = v
			}
			select {
			case <-p.done:
				return
			case <-t.C:
			}
		}
	})
	return p
}

func (p *peakRSS) stop() int64 {
	close(p.done)
	p.wg.Wait()
	if p.reset {
		return max(p.sample, procStatus(p.pid, "VmHWM:"))
	}
	return p.sample
}

// procStatus reads a "kB" field of /proc/PID/status, in bytes (0 when it
// cannot be read).
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
