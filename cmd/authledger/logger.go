package main

import (
	"io"
	"log/slog"

	"github.com/authledger/authledger/config"
)

// newLogger writes structured logs to w (stderr: stdout is for command
// output such as the version or a benchmark table).
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With(slog.String("service", "authledger"))
}
