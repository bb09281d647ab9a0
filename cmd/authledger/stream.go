package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/publicevents"
	"github.com/authledger/authledger/stream"
	"github.com/authledger/authledger/stream/jetstream"
)

// jetstreamConfig is the JetStream adapter's configuration from cfg.
func jetstreamConfig(cfg config.Config, client string) jetstream.Config {
	return jetstream.Config{URL: cfg.Stream.NATSURL, Stream: cfg.Stream.NATSStream, SubjectPrefix: cfg.Stream.SubjectPrefix,
		DuplicateWindow: cfg.Stream.DuplicateWindow, ClientName: client}
}

// wireStream builds the analytics stream's policy (stream.New over the
// JetStream publisher), or nothing without AUTHLEDGER_NATS_URL. The
// publisher connects in the background: serve starts while NATS is down,
// and the policy's lag grows until it is back. close releases it.
func wireStream(cfg config.Config, log *slog.Logger) (policy projector.Projection, closeFn func() error, err error) {
	if cfg.Stream.NATSURL == "" {
		return nil, nil, nil
	}
	mapper, err := publicevents.NewMapper(cfg.PublicURL)
	if err != nil {
		return nil, nil, err
	}
	pub, err := jetstream.NewPublisher(jetstreamConfig(cfg, "authledger serve"))
	if err != nil {
		return nil, nil, fmt.Errorf("analytics stream (AUTHLEDGER_NATS_URL): %w", err)
	}
	policy, err = stream.New(stream.Config{Publisher: pub, Mapper: mapper, Logger: log})
	if err != nil {
		_ = pub.Close()
		return nil, nil, err
	}
	return policy, pub.Close, nil
}

func runStream(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	return runGroup(ctx, "stream", "the analytics stream on NATS JetStream", []command{
		{"tail", "print the public events as they are published (`stream tail [-type T] [-from-start] [-json]`)", runStreamTail},
	}, args, getenv, stdout, stderr)
}

// typesFlag collects -type, repeated or comma-separated.
type typesFlag []string

func (f *typesFlag) String() string { return strings.Join(*f, ",") }

func (f *typesFlag) Set(v string) error {
	for t := range strings.SplitSeq(v, ",") {
		if t = strings.TrimSpace(t); t != "" {
			*f = append(*f, t)
		}
	}
	return nil
}

// runStreamTail is `authledger stream tail`: it subscribes to the
// JetStream stream and prints each public event, new ones by default.
func runStreamTail(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stream tail", flag.ContinueOnError)
	var types typesFlag
	fs.Var(&types, "type", "print only this public type (authledger.session.started.v1); repeat or comma-separate for several")
	fromStart := fs.Bool("from-start", false, "print the whole stream first, then follow")
	asJSON := fs.Bool("json", false, "print each event as its CloudEvents JSON, one per line")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: authledger stream tail [-type T]... [-from-start] [-json]")
		fmt.Fprintln(w, "\nSubscribes to the analytics stream (AUTHLEDGER_NATS_URL, AUTHLEDGER_NATS_STREAM) and")
		fmt.Fprintln(w, "prints each public event (docs/events/README.md) until interrupted: its stream")
		fmt.Fprintln(w, "sequence, time, type, subject, id and data. Published types:")
		for _, n := range publicevents.Published() {
			fmt.Fprintln(w, "  "+publicevents.Type(n))
		}
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
		envHelp(w)
	}
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	cfg, ok := loadConfig("stream tail", getenv, stderr)
	if !ok {
		return exitUsage
	}
	if cfg.Stream.NATSURL == "" {
		fmt.Fprintln(stderr, "authledger stream tail: AUTHLEDGER_NATS_URL is not set")
		return exitUsage
	}
	for _, t := range types {
		if _, ok := publicevents.InternalName(t); !ok {
			fmt.Fprintf(stderr, "authledger stream tail: -type %q is not a published type (see --help)\n", t)
			return exitUsage
		}
	}
	err := jetstream.Tail(ctx, jetstreamConfig(cfg, "authledger stream tail"), jetstream.TailOptions{Types: types, FromStart: *fromStart},
		func(r jetstream.Received) error { return printReceived(stdout, r, *asJSON) })
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "authledger stream tail: %v\n", err)
		return exitError
	}
	return exitOK
}

func printReceived(w io.Writer, r jetstream.Received, asJSON bool) error {
	if asJSON {
		b, err := r.Event.MarshalJSON()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	data := json.RawMessage(r.Event.Data())
	_, err := fmt.Fprintf(w, "%d %s %s %s %s %s\n", r.Sequence, r.Event.Time().UTC().Format("2006-01-02T15:04:05.000Z"),
		r.Event.Type(), r.Event.Subject(), r.Event.ID(), data)
	return err
}
