package projector

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// acquire takes the projection's advisory lock on a dedicated connection
// (live bindings) or the rebuild lock, waiting while another instance holds
// it. The returned context is cancelled if the lock connection is lost;
// release unlocks and closes it.
func (b *binding) acquire(ctx context.Context) (context.Context, func(), error) {
	if !b.live {
		// A rebuild holds its lock in Rebuild, around the whole run.
		return ctx, func() {}, nil
	}
	const kind = "live"
	conn, err := pgx.ConnectConfig(ctx, b.e.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, nil, fmt.Errorf("lock connection: %w", err)
	}
	if err := b.waitForLock(ctx, conn, kind); err != nil {
		_ = conn.Close(context.Background())
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		b.heartbeat(runCtx, conn, cancel)
	}()
	release := func() {
		cancel()
		<-stopped
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		if !conn.IsClosed() {
			_, _ = conn.Exec(cctx, "SELECT pg_advisory_unlock("+lockKeySQL+")", b.p.Name(), kind)
		}
		_ = conn.Close(cctx)
	}
	return runCtx, release, nil
}

// waitForLock tries the lock every LockPollInterval until it has it,
// standing by (and saying so once) while another instance holds it.
func (b *binding) waitForLock(ctx context.Context, conn *pgx.Conn, kind string) error {
	standby := false
	for {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock("+lockKeySQL+")", b.p.Name(), kind).Scan(&ok); err != nil {
			return fmt.Errorf("advisory lock: %w", err)
		}
		if ok {
			return nil
		}
		if !standby && b.onState != nil {
			b.e.logger.Info("projection runs in another instance; standing by", "projection", b.p.Name())
			b.onState(StateStandby, nil)
			standby = true
		}
		if !sleep(ctx, b.e.cfg.LockPollInterval) {
			return ctx.Err()
		}
	}
}

// heartbeat pings the lock connection every HeartbeatInterval until ctx
// is done, and cancels the run when the connection is lost (the lock with
// it: another instance may take the projection over).
func (b *binding) heartbeat(ctx context.Context, conn *pgx.Conn, cancel context.CancelFunc) {
	t := time.NewTicker(b.e.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, hcancel := context.WithTimeout(ctx, b.e.cfg.HeartbeatInterval*3)
		err := conn.Ping(hctx)
		hcancel()
		if err != nil && ctx.Err() == nil {
			b.e.logger.Warn("lost the projection lock connection; stopping and re-acquiring", "projection", b.p.Name(), "error", err)
			cancel()
			return
		}
	}
}
