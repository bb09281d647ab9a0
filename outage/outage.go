// Package outage tells a dependency that is down or not answering (a
// database restarting, a connection refused or reset, a timeout, a full
// disk) from a bug. It is the one classification every layer uses: the HTTP
// layer answers 503 (or 507 for a full disk) instead of 500, and the log
// followers retry instead of stopping.
//
// It classifies by type (net.Error, syscall errors, pgconn's error types,
// SQLSTATE classes, the ErrUnavailable sentinel that adapters wrap), never
// by message text.
package outage

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrUnavailable marks a dependency that could not be reached or did not
// answer in time. Adapters whose client reports outages in its own types
// (EventStoreDB's gRPC status codes) wrap their errors with it.
var ErrUnavailable = errors.New("dependency unavailable")

// ErrStorageFull marks a write refused because the disk or quota holding
// it is full (ENOSPC, EDQUOT, PostgreSQL's disk_full).
var ErrStorageFull = errors.New("storage full")

// Is reports whether err is a dependency being unavailable: unreachable,
// restarting, shutting down, out of connections or not answering in time.
// A request that failed so may succeed if retried later; a bug never does.
// The caller's own cancellation (context.Canceled) is not an outage.
func Is(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	for _, errno := range []syscall.Errno{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN,
		syscall.EIO, syscall.ESTALE, // the file store's disk or network mount failing
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return unavailableState(pe.Code)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	if pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	// A network operation that failed (dial, read, write), or timed out.
	// Not any net.Error: a syscall.Errno is one too, ENOSPC included.
	var oe *net.OpError
	var de *net.DNSError
	var ne net.Error
	return errors.As(err, &oe) || errors.As(err, &de) || (errors.As(err, &ne) && ne.Timeout())
}

// unavailableState reports whether a SQLSTATE says the server cannot serve
// now, as opposed to refusing the statement.
func unavailableState(code string) bool {
	switch {
	case len(code) == 5 && code[:2] == "08": // connection exception
		return true
	case code == "57P01", code == "57P02", code == "57P03": // admin/crash shutdown, cannot connect now
		return true
	case code == "53300": // too many connections
		return true
	case code == "57014": // query cancelled (statement_timeout)
		return true
	}
	return false
}

// Contention reports whether PostgreSQL aborted the statement to resolve
// contention with other transactions (serialization failure, deadlock,
// lock not available): the same work may succeed when run again.
func Contention(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "55P03":
			return true
		}
	}
	return false
}

// Retryable reports whether an operation that failed with err is worth
// running again unchanged: an outage (Is), contention (Contention), or a
// connection cut mid-answer, which leaves a transaction closed or a
// statement of an aborted one refused (io.EOF and io.ErrUnexpectedEOF are
// not in Is, since a client's truncated body ends in them too).
func Retryable(err error) bool {
	if Is(err) || Contention(err) || errors.Is(err, pgx.ErrTxClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "25P02"
}

// StorageFull reports whether err is a write refused for lack of space:
// ENOSPC or EDQUOT from the file system, PostgreSQL's disk_full (53100),
// or an error wrapping ErrStorageFull.
func StorageFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrStorageFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "53100"
}
