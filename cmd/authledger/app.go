package main

// app.go is the one place where the service is assembled. Every component
// is built here with its constructor and handed what it needs; nothing
// looks dependencies up at run time. To add a component: construct it in
// newApp (in dependency order), register its routes on a.engine, add its
// readiness check to checks, start its background loop with a.background,
// and release it in a.closers.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger"
	authaccess "github.com/authledger/authledger/auth/access"
	"github.com/authledger/authledger/auth/apikey"
	"github.com/authledger/authledger/auth/datakeys"
	authrollout "github.com/authledger/authledger/auth/rollout"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/console"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/esdb"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/httpapi"
	adminhttp "github.com/authledger/authledger/httpapi/admin"
	"github.com/authledger/authledger/httpapi/apikeys"
	"github.com/authledger/authledger/httpapi/authn"
	"github.com/authledger/authledger/httpapi/connlimit"
	"github.com/authledger/authledger/httpapi/errtable"
	identityhttp "github.com/authledger/authledger/httpapi/identity"
	"github.com/authledger/authledger/httpapi/oauth2"
	privacyhttp "github.com/authledger/authledger/httpapi/privacy"
	webhookshttp "github.com/authledger/authledger/httpapi/webhooks"
	"github.com/authledger/authledger/migrations"
	"github.com/authledger/authledger/projections"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/reactors/outbox"
	"github.com/authledger/authledger/reactors/sessionclaims"
	"github.com/authledger/authledger/reactors/sessionlimit"
	"github.com/authledger/authledger/reactors/vaultrelease"
	"github.com/authledger/authledger/readapi"
)

// app is the assembled service.
type app struct {
	cfg config.Config
	log *slog.Logger

	// db is the PostgreSQL pool of the read models (and readiness); with the
	// postgres store the log lives in the same database behind its own pool.
	db    *pgxpool.Pool
	store eventstore.Store
	// dataKeys seal the personal data in store's events (erasure destroys one).
	dataKeys *datakeys.Keyring
	engine   *gin.Engine
	// handler is what serve answers with: the engine, unless a test wraps
	// it (cmd/authledger's tests check every exchange against
	// openapi.yaml).
	handler http.Handler
	// conns caps the server's open connections (AUTHLEDGER_MAX_CONNECTIONS).
	conns *connlimit.Limiter
	// console is the web console (nil with AUTHLEDGER_CONSOLE=false);
	// consoleRoutes are the routes it registered ("GET /history").
	console       *console.Console
	consoleRoutes map[string]bool

	// tasks run beside the HTTP server until shutdown (projection runner,
	// workers). A task that fails is logged and reported, not fatal: a
	// stopped projection must not take the API down (ARCHITECTURE.md rule 5).
	tasks []task
	// closers release resources in reverse order of acquisition.
	closers []func() error
}

type task struct {
	name string
	run  func(ctx context.Context) error
}

// background schedules fn to run while the server runs.
func (a *app) background(name string, fn func(ctx context.Context) error) {
	a.tasks = append(a.tasks, task{name, fn})
}

// hooks are what tests change in an assembled service; serve passes
// none.
type hooks struct {
	// grantClock is the clock role grants expire by (nil: time.Now).
	grantClock func() time.Time
	// clock is the clock of the account-security commands and the
	// outbox (mailed tokens' expiry; nil: time.Now).
	clock func() time.Time
	// outboxPoll is how often the outbox looks for due messages (0: 1s).
	outboxPoll time.Duration
	// webhookPoll is how often the webhook deliverer looks for due
	// deliveries (0: 1s).
	webhookPoll time.Duration
	// mailOut receives the mail without AUTHLEDGER_SMTP_URL (nil: the
	// process's standard output).
	mailOut io.Writer
	// auditClock is the clock audit retention cuts by (nil: time.Now).
	auditClock func() time.Time
	// consoleAPI wraps the API handler the console calls in process
	// (nil: the engine as it is).
	consoleAPI func(http.Handler) http.Handler
}

// newApp connects, migrates and wires everything; it listens on nothing.
// On error everything acquired so far is released.
func newApp(ctx context.Context, cfg config.Config, log *slog.Logger) (*app, error) {
	return newAppWith(ctx, cfg, log, hooks{})
}

// newAppWith is newApp with test hooks.
func newAppWith(ctx context.Context, cfg config.Config, log *slog.Logger, h hooks) (_ *app, err error) {
	a := &app{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			_ = a.close()
		}
	}()
	startCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()

	if cfg.MigrateOnStart {
		if err := migrations.Migrate(startCtx, cfg.DatabaseURL); err != nil {
			return nil, fmt.Errorf("migrate the database (DATABASE_URL): %w", err)
		}
		log.Info("database migrated")
	}

	a.db, err = openReadModelPool(startCtx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() error { a.db.Close(); return nil })

	// The master key first: serve creates the development key file when
	// none is configured, and the store seals under keys it protects.
	master, err := loadMasterKey(cfg, log)
	if err != nil {
		return nil, err
	}
	sealedLog, err := openEventStore(startCtx, cfg)
	if err != nil {
		return nil, err
	}
	a.store, a.dataKeys = sealedLog, sealedLog.keys
	a.closers = append(a.closers, a.store.Close)

	registry := httpapi.NewRegistry()
	checks := []httpapi.Check{
		{Name: "database", Func: func(ctx context.Context) (any, error) { return nil, a.db.Ping(ctx) }},
		{Name: "event_store", Func: func(ctx context.Context) (any, error) {
			head, err := a.store.Head(ctx)
			return map[string]string{"head": head.String()}, err
		}},
	}

	// Identity: keys, tokens, passwords, the command handlers, and the
	// revocation set fed by the log (so that a logout bites on every
	// instance).
	ident, err := wireIdentity(startCtx, cfg, master, a.store, a.db, log, h)
	if err != nil {
		return nil, err
	}
	// Closed before the store (closers run in reverse): refused logins
	// answered but still being appended reach the log.
	a.closers = append(a.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ident.deps.Login.Drain(ctx)
		// And link requests answered but still being appended.
		ident.deps.Account.RequestReset.Drain(ctx)
		return nil
	})
	a.closers = append(a.closers, ident.deps.RateLimit.Close)
	if err := ident.deps.RateLimit.Register(registry); err != nil {
		return nil, err
	}
	var externalPolicies []projector.Projection
	if x := ident.external; x != nil {
		// External auth: the client's metrics and breaker, the refresher
		// of the vault's tokens (every instance runs one; the vault's
		// claims give each session to one at a time), and the policy
		// that empties the vault of revoked sessions.
		a.closers = append(a.closers, func() error { x.client.Close(); return nil })
		refresher, err := x.newRefresher(cfg, ident.deps.Revoke, ident.externalRefresh, log)
		if err != nil {
			return nil, err
		}
		release, err := vaultrelease.New(x.vault, log)
		if err != nil {
			return nil, err
		}
		if err := errors.Join(registry.Register(x.client), registry.Register(refresher)); err != nil {
			return nil, err
		}
		a.background("external-token-refresher", refresher.Run)
		externalPolicies = append(externalPolicies, release)
		checks = append(checks, httpapi.Check{Name: "external_auth", Func: x.breaker})
	}

	// Tasks and files: blobs under the data directory, the task commands
	// (mounted below) and the policy that removes an ended task's files.
	tasks, err := newTaskCore(cfg, a.store, a.db)
	if err != nil {
		return nil, err
	}
	release, err := tasks.blobRelease(projector.NewWaiter(a.db, nil, 0), log)
	if err != nil {
		return nil, err
	}

	// Projections: the read models, fed by the log, and the policies that
	// keep sessions' claims current, remove ended tasks' files and
	// (AUTHLEDGER_MAX_SESSIONS_PER_USER) cap each user's sessions; they
	// run, and resume from their checkpoints, like read models. Beside
	// them, the local followers of this process: the revocation feed of
	// the token check and the worker's wake-ups. A failed projection stops
	// alone and shows in /readyz; the API keeps serving. A follower never
	// stops: it resumes after any outage, and /readyz says 503 while it
	// does.
	deliverer, err := newDeliverer(cfg, a.db, ident, log, h)
	if err != nil {
		return nil, err
	}
	a.background("outbox", deliverer.Run)
	// Webhooks: the policy that makes deliveries of the public events,
	// and the deliverer (every instance runs one; leases share the rows).
	hooksCore, err := wireWebhooks(cfg, a.store, a.db, ident.webhookKey, log, h)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() error { hooksCore.client.Close(); return nil })
	a.background("webhooks", hooksCore.deliverer.Run)
	policies := append([]projector.Projection{sessionclaims.New(ident.claimsSync, ident.deps.Revoke, nil), release,
		outbox.New(h.clock, 0), hooksCore.policy}, externalPolicies...)
	if cfg.Identity.MaxSessionsPerUser > 0 {
		limit, err := sessionlimit.New(sessionlimit.Config{
			Pool: a.db, Waiter: projector.NewWaiter(a.db, nil, 0), Revoke: ident.deps.Revoke, Registry: ident.registry,
			Limit: cfg.Identity.MaxSessionsPerUser, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		policies = append(policies, limit)
	}
	// The analytics stream (AUTHLEDGER_NATS_URL): the public events
	// published to JetStream from the policy's own checkpoint.
	streamPolicy, closeStream, err := wireStream(cfg, log)
	if err != nil {
		return nil, err
	}
	if streamPolicy != nil {
		a.closers = append(a.closers, closeStream)
		policies = append(policies, streamPolicy)
	}
	runner, err := projections.NewRunner(projections.Config{
		Store:       a.store,
		Pool:        a.db,
		Logger:      log,
		Registerer:  registry,
		Projections: append(projections.Builtin(ident.auditKey), policies...),
		Followers: []projector.Follower{
			{Name: authn.FeedName, Filter: ident.revocations.Filter(), Handle: ident.revocations.Apply},
			// The staged rollout: its stream read at start, then followed.
			{Name: authrollout.FollowerName, Filter: ident.rollout.Filter(), Start: ident.rollout.Start, Handle: ident.rollout.Apply},
			// Roles and grants: from the start of the log (grants are on
			// every user's stream).
			{Name: authaccess.FollowerName, Filter: ident.access.Filter(), Handle: ident.access.Apply},
			// Bulk revocations: their one stream read at start, then followed.
			{Name: authn.CutoffsName, Filter: ident.cutoffs.Filter(), Start: ident.cutoffs.Start, Handle: ident.cutoffs.Apply},
			// API keys, service accounts and disabled owners: from the
			// start of the log.
			{Name: apikey.FollowerName, Filter: ident.apiKeys.keys.Filter(), Handle: ident.apiKeys.keys.Apply},
		},
		MaxLag: cfg.ReadyMaxLag,
	})
	if err != nil {
		return nil, fmt.Errorf("projections: %w", err)
	}
	ident.revocations.Watch(func() time.Time { t, _ := runner.VouchedAt(authn.FeedName); return t })
	if cfg.AuditRetention > 0 {
		archiver, err := newAuditArchiver(cfg, a.db, a.store, ident.auditExport, events.Actor{Kind: events.ActorSystem, ID: "audit-retention"})
		if err != nil {
			return nil, fmt.Errorf("audit retention: %w", err)
		}
		if h.auditClock != nil {
			archiver.nowFunc = h.auditClock
		}
		a.background("audit-retention", archiver.run(log))
	}
	ident.access.Watch(func() time.Time { t, _ := runner.VouchedAt(authaccess.FollowerName); return t })
	ident.cutoffs.Watch(func() time.Time { t, _ := runner.VouchedAt(authn.CutoffsName); return t })
	ident.apiKeys.keys.Watch(func() time.Time { t, _ := runner.VouchedAt(apikey.FollowerName); return t })
	// Last-used times of API keys: collected in memory, written every
	// few seconds and at shutdown.
	a.background("api-key-usage", ident.apiKeys.usage.Run)
	a.background("projections", runner.Run)
	checks = append(checks, httpapi.Check{Name: "projections", Func: runner.Readiness})
	a.background("signing-keys", ident.refreshKeyRing(log))

	// The embedded worker (AUTHLEDGER_WORKERS; 0 leaves processing to
	// `authledger worker`).
	waiter := projector.NewWaiter(a.db, runner, 0)
	a.background("access-denials", tasks.handlers.Denials.Run)
	if cfg.Tasks.Workers > 0 {
		w, err := tasks.newWorker(startCtx, cfg, cfg.Tasks.Workers, a.store, waiter, log)
		if err != nil {
			return nil, err
		}
		if err := runner.AddFollower(w.Follower()); err != nil {
			return nil, err
		}
		a.background("worker", w.Run)
	}

	a.engine, err = httpapi.New(httpapi.Config{
		Logger:         log,
		Version:        Version(),
		TrustedProxies: cfg.TrustedProxies,
		Readiness:      checks,
		Registry:       registry,
		OpenAPI:        authledger.OpenAPI,
		Limits:         routeLimits(cfg),
		Errors:         errtable.Table(),
		HSTS:           strings.HasPrefix(strings.ToLower(cfg.PublicURL), "https://"),
	})
	if err != nil {
		return nil, err
	}
	if a.conns, err = connlimit.New(cfg.HTTP.MaxConnections); err != nil {
		return nil, err
	}
	if err := a.conns.Register(registry); err != nil {
		return nil, err
	}
	a.handler = a.engine
	if len(cfg.CORSOrigins) > 0 {
		// Before the routes: engine middleware reaches only the routes
		// registered after it (and the 404/405 answers, where preflights
		// land).
		a.engine.Use(corsMiddleware(cfg.CORSOrigins))
	}
	if err := identityhttp.Mount(&a.engine.RouterGroup, ident.deps); err != nil {
		return nil, err
	}
	if err := mountUpstream(a.engine, cfg, ident, registry, log); err != nil {
		return nil, err
	}
	// Everything under /v1 but register, login and refresh (mounted above)
	// requires an access token, and is rate-limited per user: the queries
	// and the task commands.
	v1 := a.engine.Group("/v1", ident.deps.Authenticated()...)
	if err := readapi.Mount(v1, readapi.Deps{Pool: a.db, Waiter: waiter, ConsistencyTimeout: cfg.ConsistencyWait, Authorize: tasks.authorizeRead, Log: a.store}); err != nil {
		return nil, err
	}
	if err := tasks.mount(v1, cfg, log); err != nil {
		return nil, err
	}
	if err := adminhttp.Mount(v1, adminhttp.Deps{Admin: ident.admin, Catalog: ident.access}); err != nil {
		return nil, err
	}
	if email := cfg.Identity.BootstrapAdmin; email != "" {
		a.background("bootstrap-admin", bootstrapAdmin(ident.bootstrap, email, log))
	}
	if err := apikeys.Mount(v1, ident.keyDeps()); err != nil {
		return nil, err
	}
	hooksCore.deps.Waiter = waiter
	if err := webhookshttp.Mount(v1, hooksCore.deps); err != nil {
		return nil, err
	}
	// The data subject's rights (ADR 0034): export, erasure, consent.
	erase := ident.erase
	erase.Keys, erase.Quotas, erase.DeleteTask = a.dataKeys, tasks.handlers.Delete.Quotas, tasks.handlers.Delete
	if err := privacyhttp.Mount(v1, privacyhttp.Deps{Pool: a.db, Blobs: tasks.blobs, Erase: &erase, AcceptTerms: ident.acceptTerms,
		TermsVersion: cfg.Account.TermsVersion, Opener: sealedLog.Store, AuthorizeRead: tasks.authorizeRead,
		Consistent: func(projections ...string) gin.HandlerFunc {
			return readapi.Consistency(waiter, cfg.ConsistencyWait, projections...)
		},
		APIKeys: func(owner uuid.UUID) any { return ident.apiKeys.keys.Owned(owner) }}); err != nil {
		return nil, err
	}
	if err := oauth2.Mount(&a.engine.RouterGroup, ident.oauth2Deps()); err != nil {
		return nil, err
	}
	if cfg.Console {
		before := map[string]bool{}
		for _, r := range a.engine.Routes() {
			before[r.Method+" "+r.Path] = true
		}
		if a.console, err = mountConsole(a, cfg, ident, tasks, log, h); err != nil {
			return nil, err
		}
		a.consoleRoutes = map[string]bool{}
		for _, r := range a.engine.Routes() {
			if k := r.Method + " " + r.Path; !before[k] {
				a.consoleRoutes[k] = true
			}
		}
	}
	return a, nil
}

func openReadModelPool(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = "authledger"
	}
	pc.AfterConnect = pg.RegisterTypes
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = pg.DefaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL (DATABASE_URL): %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL (DATABASE_URL): %w", err)
	}
	return pool, nil
}

// openLogStore opens the configured store and proves it reachable, so a
// wrong ESDB_URL fails start-up with a message naming it rather than the
// first request.
func openLogStore(ctx context.Context, cfg config.Config) (eventstore.Store, error) {
	var (
		s   eventstore.Store
		err error
	)
	switch cfg.EventStore {
	case config.EventStorePostgres:
		var ps *pg.Store
		if ps, err = pg.Open(ctx, pg.Config{ConnString: cfg.DatabaseURL}); err != nil {
			return nil, fmt.Errorf("open the PostgreSQL event store (DATABASE_URL): %w", err)
		}
		s = ps
	case config.EventStoreESDB:
		if cfg.ESDBURL == "" {
			return nil, errors.New("AUTHLEDGER_EVENT_STORE=esdb needs ESDB_URL")
		}
		var es *esdb.Store
		if es, err = esdb.Open(ctx, esdb.Config{URL: cfg.ESDBURL}); err != nil {
			// The adapter's error names the (redacted) URL and the cause.
			return nil, fmt.Errorf("open the EventStoreDB event store (ESDB_URL): %w", err)
		}
		s = es
	default:
		return nil, fmt.Errorf("AUTHLEDGER_EVENT_STORE: unknown store %q", cfg.EventStore)
	}
	if _, err := s.Head(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("event store (%s) does not answer: %w", cfg.EventStore, err)
	}
	return s, nil
}

// run listens on the configured address and serves until ctx is done.
func (a *app) run(ctx context.Context) error {
	defer func() { _ = a.close() }()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (AUTHLEDGER_LISTEN): %w", a.cfg.Listen, err)
	}
	return a.serve(ctx, ln)
}

// serve runs the HTTP server and the background tasks on ln until ctx is
// done, then drains in-flight requests (bounded by
// AUTHLEDGER_SHUTDOWN_TIMEOUT) and stops the tasks. It does not release the
// app's resources (run does).
func (a *app) serve(ctx context.Context, ln net.Listener) error {
	// The timeouts bound every connection; the routes that stream or
	// upload set their own deadlines (routeLimits), and a.conns keeps the
	// open connections under the cap, closing idle and slow ones first
	// (docs/adr/0008).
	srv := &http.Server{
		Handler:           a.conns.Handler(a.handler),
		ReadHeaderTimeout: a.cfg.ReadHeaderTimeout,
		ReadTimeout:       a.cfg.HTTP.ReadTimeout,
		WriteTimeout:      a.cfg.HTTP.WriteTimeout,
		IdleTimeout:       a.cfg.HTTP.IdleTimeout,
		ConnState:         a.conns.ConnState,
		ConnContext:       a.conns.ConnContext,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	ln = a.conns.Listener(ln)

	taskCtx, stopTasks := context.WithCancel(ctx)
	defer stopTasks()
	var wg sync.WaitGroup
	for _, t := range a.tasks {
		wg.Go(func() {
			err := t.run(taskCtx)
			if err != nil && taskCtx.Err() == nil {
				a.log.Error("background task stopped", slog.String("task", t.name), slog.String("error", err.Error()))
			}
		})
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	a.log.Info("listening",
		slog.String("addr", ln.Addr().String()),
		slog.String("public_url", a.cfg.PublicURL),
		slog.String("event_store", a.cfg.EventStore),
		slog.String("version", Version()))

	var err error
	select {
	case err = <-serveErr:
		err = fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
		a.log.Info("shutting down", slog.Duration("timeout", a.cfg.ShutdownTimeout))
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
		defer cancel()
		if shutErr := srv.Shutdown(shutCtx); shutErr != nil {
			err = fmt.Errorf("graceful shutdown: %w", shutErr)
			_ = srv.Close()
		}
		if e := <-serveErr; !errors.Is(e, http.ErrServerClosed) {
			err = errors.Join(err, e)
		}
	}
	stopTasks()
	wg.Wait()
	if err == nil {
		a.log.Info("stopped")
	}
	return err
}

// close releases everything newApp acquired, last first.
func (a *app) close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// bootstrapAdmin applies AUTHLEDGER_BOOTSTRAP_ADMIN: at once when the
// address has a user, else as soon as it registers (checked every
// second). The log records it once per user, whichever instance gets
// there first, and no later start grants it again.
func bootstrapAdmin(b *commands.BootstrapAdmin, email string, log *slog.Logger) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		for {
			err := b.WaitAndApply(ctx, email, time.Second, func(granted bool) {
				if granted {
					log.Info("bootstrap admin: granted the admin role (AUTHLEDGER_BOOTSTRAP_ADMIN)", slog.String("email", email))
				} else {
					log.Info("bootstrap admin: already applied; nothing granted (AUTHLEDGER_BOOTSTRAP_ADMIN)", slog.String("email", email))
				}
			})
			if err == nil || ctx.Err() != nil {
				return nil
			}
			// The log unreachable: try again, as a follower would.
			log.Warn("bootstrap admin: cannot apply yet", slog.String("error", err.Error()))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(5 * time.Second):
			}
		}
	}
}
