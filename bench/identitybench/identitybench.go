// Package identitybench measures GET /v1/me through the real stack: an
// HTTP server on a loopback port running the gin engine of httpapi.New
// (request id, JSON access log, metrics, recovery), the real Bearer
// middleware verifying ES256 access tokens, readapi.Mount and a
// primary-key read of the user_profiles read model, which a live runner of
// the identity projections built from events appended to the log.
//
// Two rows: the most requests/s a fixed number of clients get (closed
// loop), and the latency at a steady 200 requests/s (open loop: requests
// leave on a schedule and latency counts from the scheduled time, so a
// stall shows in p99 instead of slowing the load down). The figures are
// printed, never asserted: they depend on the machine.
//
// The accounts and sessions are appended the way the commands append them
// (the domain aggregates' events, with metadata, at NoStream) rather than
// through the command handlers, which readapi packages may not import.
package identitybench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	authaccess "github.com/authledger/authledger/auth/access"
	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/password"
	"github.com/authledger/authledger/auth/token"
	"github.com/authledger/authledger/bench/loadgen"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/authn"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/userviews"
	"github.com/authledger/authledger/readapi"
)

// Goal of issue 5 for the open-loop row, printed beside it.
const p99Goal = 10 * time.Millisecond

// Config tunes Run. Zero fields take the defaults.
type Config struct {
	// Store is the log and Pool holds the read models (a scratch database:
	// Run appends accounts and creates the identity read models there).
	// Required.
	Store eventstore.Store
	Pool  *pgxpool.Pool
	// Users is how many accounts (each with one session and token) the
	// requests go round (default 200).
	Users int
	// Rate is the open-loop row's request rate per second (default 200).
	Rate int
	// Concurrency is the closed-loop row's number of clients (default 8).
	Concurrency int
	// Duration of each row (default 10s).
	Duration time.Duration
	// Logger receives the projection runtime's logs (default: discarded).
	// The engine's access log is always encoded (JSON) and discarded, so
	// its cost is measured.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Users == 0 {
		c.Users = 200
	}
	if c.Rate == 0 {
		c.Rate = 200
	}
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil || c.Pool == nil {
		errs = append(errs, errors.New("identitybench: Store and Pool are required"))
	}
	if c.Users < 0 || c.Rate < 0 || c.Concurrency < 0 || c.Duration < 0 {
		errs = append(errs, errors.New("identitybench: Users, Rate, Concurrency and Duration must not be negative"))
	}
	return errors.Join(errs...)
}

// Row is one measured row.
type Row struct {
	Name string
	// Concurrency is the clients of a closed-loop row (0 for open loop).
	Concurrency int
	// Rate is the offered rate of an open-loop row (0 for closed loop).
	Rate      int
	Requests  int
	PerSecond float64
	P50, P99  time.Duration
}

// Result holds both rows: Max (closed loop) and Steady (open loop at Rate).
type Result struct {
	Max, Steady Row
}

// Run seeds the accounts, builds the read models with a live runner,
// measures both rows and writes a Markdown section with their table to w.
// Any answer other than 200 fails the run.
func Run(ctx context.Context, cfg Config, w io.Writer) (Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	ring, err := newRing()
	if err != nil {
		return Result{}, err
	}
	tcfg := token.DefaultConfig("http://bench.authledger.invalid")
	issuer, err := token.NewIssuer(tcfg, ring)
	if err != nil {
		return Result{}, fmt.Errorf("identitybench: %w", err)
	}
	verifier, err := token.NewVerifier(tcfg, ring)
	if err != nil {
		return Result{}, fmt.Errorf("identitybench: %w", err)
	}
	bearers, last, err := seed(ctx, cfg.Store, issuer, cfg.Users)
	if err != nil {
		return Result{}, err
	}

	reg := events.NewRegistry()
	if err := session.RegisterEvents(reg); err != nil {
		return Result{}, fmt.Errorf("identitybench: %w", err)
	}
	rev, err := authn.NewRevocations(authn.RevocationsConfig{TTL: tcfg.MaxKeyRetention(), Store: cfg.Store, Registry: reg})
	if err != nil {
		return Result{}, fmt.Errorf("identitybench: %w", err)
	}
	profiles, sessions := userviews.NewProfiles(), userviews.NewSessions()
	// The revocation feed runs as in serve, so the token check answers
	// from its set, not from the session streams.
	// Callers' permissions, resolved per request from memory as serve does.
	perms, err := authaccess.New(authaccess.Config{Store: cfg.Store})
	if err != nil {
		return Result{}, fmt.Errorf("identitybench: %w", err)
	}
	runner, err := projector.NewRunner(projector.Config{Store: cfg.Store, Pool: cfg.Pool, Logger: cfg.Logger,
		// /v1/me joins the external identities to the profile.
		Projections: []projector.Projection{profiles, sessions, userviews.NewExternalIdentities(), userviews.NewEmailVerifications(), userviews.NewPrivacy()},
		Followers: []projector.Follower{{Name: authn.FeedName, Filter: rev.Filter(), Handle: rev.Apply},
			{Name: authaccess.FollowerName, Filter: perms.Filter(), Handle: perms.Apply}}})
	if err != nil {
		return Result{}, fmt.Errorf("identitybench: %w", err)
	}
	rev.Watch(func() time.Time { t, _ := runner.VouchedAt(authn.FeedName); return t })
	perms.Watch(func() time.Time { t, _ := runner.VouchedAt(authaccess.FollowerName); return t })
	runErr := make(chan error, 1)
	go func() { runErr <- runner.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) {
			cfg.Logger.Warn("identitybench: projection runner", "error", err)
		}
	}()
	waiter := projector.NewWaiter(cfg.Pool, runner, 0)
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	// Both projections, not only the one /v1/me reads: one still catching
	// up through a long log would share the CPU with the measured requests.
	err = waiter.WaitFor(wctx, last, userviews.ProfilesName, userviews.SessionsName)
	wcancel()
	if err != nil {
		return Result{}, fmt.Errorf("identitybench: read models never caught up: %w", err)
	}

	url, stop, err := serve(ctx, cfg, verifier, rev, perms, waiter)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute,
	}}
	defer client.CloseIdleConnections()
	get := func(ctx context.Context, i int) error { return getMe(ctx, client, url, bearers[i%len(bearers)]) }

	// Warm up connections, the pool and the plan cache.
	for i := range min(len(bearers), 4*cfg.Concurrency) {
		if err := get(ctx, i); err != nil {
			return Result{}, err
		}
	}
	var res Result
	if res.Max, err = closedLoop(ctx, cfg.Concurrency, cfg.Duration, get); err != nil {
		return Result{}, err
	}
	res.Max.Name = "GET /v1/me, max"
	if res.Steady, err = openLoop(ctx, cfg.Rate, cfg.Duration, get); err != nil {
		return Result{}, err
	}
	res.Steady.Name = "GET /v1/me, steady"

	fmt.Fprintf(w, "\n## Read API (GET /v1/me over HTTP on loopback; ES256 Bearer tokens; %d accounts)\n", cfg.Users)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\tclients\toffered rate\trequests\treq/s\tp50\tp99\tgoal\t")
	fmt.Fprintf(tw, "%s\t%d\t\t%d\t%.0f\t%s\t%s\t\t\n", res.Max.Name, res.Max.Concurrency, res.Max.Requests, res.Max.PerSecond, ms(res.Max.P50), ms(res.Max.P99))
	verdict := "met"
	if res.Steady.P99 >= p99Goal {
		verdict = "missed"
	}
	fmt.Fprintf(tw, "%s\t\t%d/s\t%d\t%.0f\t%s\t%s\tp99 < %s: %s\t\n", res.Steady.Name, res.Steady.Rate, res.Steady.Requests,
		res.Steady.PerSecond, ms(res.Steady.P50), ms(res.Steady.P99), ms(p99Goal), verdict)
	return res, tw.Flush()
}

// newRing is a one-key ES256 ring, active from now.
func newRing() (*keys.RingHolder, error) {
	k, err := keys.Generate(keys.DefaultAlgorithm)
	if err != nil {
		return nil, fmt.Errorf("identitybench: %w", err)
	}
	now := time.Now().Add(-time.Minute)
	ring, err := keys.NewKeyRing(keys.Entry{Key: k, Lifecycle: keys.Lifecycle{AddedAt: now, ActivatedAt: now}})
	if err != nil {
		return nil, fmt.Errorf("identitybench: %w", err)
	}
	return keys.NewRingHolder(ring), nil
}

// seed appends n registrations and n logins as the commands do, and
// returns an access token per account and the last position written.
func seed(ctx context.Context, store eventstore.Store, issuer *token.Issuer, n int) ([]string, eventstore.Position, error) {
	// Any PHC string will do (nobody logs in); one cheap hash makes one.
	hasher, err := password.NewHasher(password.Config{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
	if err != nil {
		return nil, eventstore.Position{}, fmt.Errorf("identitybench: %w", err)
	}
	hash, err := hasher.Hash(ctx, "bench password, never used")
	if err != nil {
		return nil, eventstore.Position{}, fmt.Errorf("identitybench: %w", err)
	}
	run := uuid.NewString()[:8]
	bearers := make([]string, n)
	var (
		mu   sync.Mutex
		last eventstore.Position
	)
	err = parallel(ctx, n, 8, func(ctx context.Context, i int) error {
		now := time.Now()
		uid, sid := uuid.New(), uuid.New()
		u, err := user.Register(uid, fmt.Sprintf("bench-%s-%d@example.com", run, i), fmt.Sprintf("Bench user %d", i), hash, now)
		if err != nil {
			return err
		}
		var digest session.Digest
		_, _ = rand.Read(digest[:])
		s, err := session.Start(session.StartParams{SessionID: sid, UserID: uid, Method: session.MethodPassword,
			AMR: []string{session.AMRPassword}, IP: "127.0.0.1", UserAgent: "identitybench", RefreshDigest: digest}, now, session.DefaultPolicy())
		if err != nil {
			return err
		}
		var pos eventstore.Position
		for _, a := range []struct {
			stream  string
			changes []events.Event
		}{{user.StreamName(uid), u.Changes()}, {session.StreamName(sid), s.Changes()}} {
			data, err := encode(a.changes, now)
			if err != nil {
				return err
			}
			res, err := store.Append(ctx, a.stream, eventstore.NoStream{}, data...)
			if err != nil {
				return fmt.Errorf("identitybench: append %s: %w", a.stream, err)
			}
			pos = res.Position
		}
		tok, _, err := issuer.Issue(token.Subject{UserID: uid, SessionID: sid, Name: u.DisplayName(), AMR: []string{session.AMRPassword}, Roles: u.Roles()}, now)
		if err != nil {
			return fmt.Errorf("identitybench: issue: %w", err)
		}
		mu.Lock()
		defer mu.Unlock()
		bearers[i] = tok
		if pos.Compare(last) > 0 {
			last = pos
		}
		return nil
	})
	return bearers, last, err
}

// encode is the event data the command repository writes: the event JSON
// under its registered name, with metadata naming the system as actor.
func encode(evs []events.Event, now time.Time) ([]eventstore.EventData, error) {
	out := make([]eventstore.EventData, 0, len(evs))
	for _, e := range evs {
		name, data, err := events.Encode(e)
		if err != nil {
			return nil, err
		}
		id, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		md, err := events.EncodeMetadata(events.Metadata{EventID: id, OccurredAt: now.UTC(), CorrelationID: "identitybench",
			Actor: events.Actor{Kind: events.ActorSystem, ID: "identitybench"}, ClientIP: "127.0.0.1", UserAgent: "identitybench"})
		if err != nil {
			return nil, err
		}
		out = append(out, eventstore.EventData{ID: id, Type: name, Data: data, Metadata: md})
	}
	return out, nil
}

// serve starts the engine on a loopback port.
func serve(ctx context.Context, cfg Config, verifier *token.Verifier, rev *authn.Revocations, perms *authaccess.Live, waiter readapi.Waiter) (string, func(), error) {
	engine, err := httpapi.New(httpapi.Config{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), OpenAPI: []byte("openapi: 3.1.0\n")})
	if err != nil {
		return "", nil, err
	}
	v1 := engine.Group("/v1", authn.Middleware(verifier, rev, authn.WithPermissions(perms)))
	// Only /v1/me is measured; task reads are refused unrecorded.
	refuse := func(*gin.Context, uuid.UUID, bool) error { return task.ErrNotFound }
	if err := readapi.Mount(v1, readapi.Deps{Pool: cfg.Pool, Waiter: waiter, Authorize: refuse}); err != nil {
		return "", nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("identitybench: listen: %w", err)
	}
	srv := &http.Server{Handler: engine, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return "http://" + ln.Addr().String() + "/v1/me", stop, nil
}

func getMe(ctx context.Context, client *http.Client, url, bearer string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("identitybench: GET /v1/me: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("identitybench: GET /v1/me: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("identitybench: GET /v1/me answered %d: %s", resp.StatusCode, body)
	}
	return nil
}

// closedLoop runs op from n clients for d, each sending its next request
// when the previous one is answered; i numbers the requests across clients.
func closedLoop(ctx context.Context, n int, d time.Duration, op func(ctx context.Context, i int) error) (Row, error) {
	r, err := loadgen.Run(ctx, n, d, func(ctx context.Context, worker, i int) error { return op(ctx, worker+i*n) })
	if err != nil {
		return Row{}, err
	}
	row := rowOf(r)
	row.Concurrency = n
	return row, nil
}

// openLoop sends rate requests per second for d on a fixed schedule, each
// on its own goroutine, and measures each from its scheduled time.
func openLoop(ctx context.Context, rate int, d time.Duration, op func(ctx context.Context, i int) error) (Row, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	total := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, total)
	errs := make([]error, total)
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; i < total && ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * interval)
		timer.Reset(time.Until(at))
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		wg.Go(func() {
			if errs[i] = op(ctx, i); errs[i] != nil {
				cancel()
				return
			}
			lat[i] = time.Since(at)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return Row{}, err
	}
	if err := ctx.Err(); err != nil {
		return Row{}, err
	}
	r := rowOf(loadgen.Summarise(lat, elapsed))
	r.Rate = rate
	return r, nil
}

func rowOf(r loadgen.Result) Row {
	return Row{Requests: r.Ops, PerSecond: r.PerSecond(), P50: r.P50, P99: r.P99}
}

// parallel calls fn for 0..n-1 from workers goroutines; the first error
// stops the rest.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg   sync.WaitGroup
		once sync.Once
		err  error
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if e := fn(ctx, i); e != nil {
					once.Do(func() { err = e; cancel() })
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
