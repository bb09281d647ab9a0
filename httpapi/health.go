package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/httpapi/problem"
)

// Check is one readiness condition (database reachable, a projection
// running and caught up). Func returns optional details shown in /readyz
// (lag, checkpoint) and an error when the condition fails. The error text is
// logged, not shown: it may name hosts and internals.
type Check struct {
	Name string
	Func func(ctx context.Context) (details any, err error)
}

// CheckResult is one check's entry in the /readyz body.
type CheckResult struct {
	Status  string `json:"status"` // "ok" or "failing"
	Details any    `json:"details,omitempty"`
}

type readyDoc struct {
	Status string                 `json:"status"`
	Checks map[string]CheckResult `json:"checks"`
}

type notReadyDoc struct {
	problem.Document
	Checks map[string]CheckResult `json:"checks"`
}

func healthz(version string) gin.HandlerFunc {
	body := gin.H{"status": "ok", "version": version}
	return func(c *gin.Context) { c.JSON(http.StatusOK, body) }
}

// readyz runs every check concurrently under one deadline: 200 when all
// pass, otherwise 503 problem+json listing each check's state.
func readyz(log *slog.Logger, checks []Check, timeout time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), timeout)
		defer cancel()
		results := make(map[string]CheckResult, len(checks))
		var (
			mu     sync.Mutex
			wg     sync.WaitGroup
			failed bool
		)
		for _, chk := range checks {
			wg.Go(func() {
				details, err := runCheck(ctx, chk)
				r := CheckResult{Status: "ok", Details: details}
				if err != nil {
					r.Status = "failing"
					log.LogAttrs(ctx, slog.LevelWarn, "readiness check failing",
						slog.String("request_id", RequestID(c)),
						slog.String("check", chk.Name),
						slog.String("error", err.Error()))
				}
				mu.Lock()
				defer mu.Unlock()
				results[chk.Name] = r
				failed = failed || err != nil
			})
		}
		wg.Wait()
		if !failed {
			c.JSON(http.StatusOK, readyDoc{Status: "ready", Checks: results})
			return
		}
		pe := problem.Unavailable(time.Second, "At least one readiness check is failing.")
		writeProblem(c, pe, notReadyDoc{Document: pe.Document(instance(c)), Checks: results})
	}
}

// runCheck shields /readyz from a check that panics or ignores its
// deadline beyond returning.
func runCheck(ctx context.Context, chk Check) (details any, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			err = &panicError{rec}
		}
	}()
	return chk.Func(ctx)
}

type panicError struct{ v any }

func (p *panicError) Error() string { return "readiness check panicked" }
