package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/authledger/authledger/auth/external"
)

// runExternalAuth dispatches `authledger external-auth <check>`.
func runExternalAuth(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	return runGroup(ctx, "external-auth", "validate the external auth API", []command{
		{"check", "log in once at the external auth API and print a redacted report", runExternalAuthCheck},
	}, args, getenv, stdout, stderr)
}

// runExternalAuthCheck is `authledger external-auth check`: one login against
// the configured external auth API with an operator's credentials, and a
// report an operator can share: status, latency, attempts, which mapped
// members the answer held, the user, the tokens' fingerprints and whether
// they verify. Never a token or the password.
func runExternalAuthCheck(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "usage: authledger external-auth check -email E [-password-file F]")
		fmt.Fprintln(w, "\nLogs in once at AUTHLEDGER_EXTERNAL_AUTH_URL (whatever AUTHLEDGER_USE_EXTERNAL_AUTH")
		fmt.Fprintln(w, "says) and prints a redacted report: status, latency, attempts, each mapped field")
		fmt.Fprintln(w, "found or not, the user, token fingerprints and their validation against")
		fmt.Fprintln(w, "AUTHLEDGER_EXTERNAL_AUTH_ISSUER and _AUDIENCE. The password is read from the")
		fmt.Fprintln(w, "file (\"-\", the default, is standard input), never from the command line.")
		fmt.Fprintln(w, "Exits 1 when the login, a required field or a token check fails.")
		envHelp(w)
	}
	fs := flag.NewFlagSet("external-auth check", flag.ContinueOnError)
	fs.Usage = func() { usage(fs.Output()) }
	email := fs.String("email", "", "the address to log in with (required)")
	pwFile := fs.String("password-file", "-", "file holding the password; - reads standard input")
	if done, code := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	if *email == "" {
		fmt.Fprintln(stderr, "authledger external-auth check: -email is required")
		return exitUsage
	}
	cfg, ok := loadConfig("external-auth", getenv, stderr)
	if !ok {
		return exitUsage
	}
	// Checked here whatever the flag: this is how a provider is validated
	// before external auth is turned on.
	if err := cfg.External.Client.Validate(); err != nil {
		fmt.Fprintf(stderr, "authledger external-auth check: %v\n", err)
		return exitUsage
	}
	password, err := readPassword(*pwFile)
	if err != nil {
		fmt.Fprintf(stderr, "authledger external-auth check: %v\n", err)
		return exitUsage
	}
	ec, err := externalClientConfig(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "authledger external-auth check: %v\n", err)
		return exitUsage
	}
	client, err := external.NewClient(ec)
	if err != nil {
		fmt.Fprintf(stderr, "authledger external-auth check: %v\n", err)
		return exitError
	}
	defer client.Close()
	validator, err := external.NewTokenValidator(ec)
	if err != nil {
		fmt.Fprintf(stderr, "authledger external-auth check: %v\n", err)
		return exitError
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !checkLogin(ctx, client, validator, *email, password, stdout) {
		return exitError
	}
	return exitOK
}

// readPassword reads the first line of path ("-": standard input).
func readPassword(path string) (string, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path) //nolint:gosec // the operator names the file
		if err != nil {
			return "", err
		}
		defer func() { _ = f.Close() }()
		r = f
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password given")
	}
	return line, nil
}

// checkLogin prints the report and reports whether everything checked out.
func checkLogin(ctx context.Context, c *external.Client, v *external.TokenValidator, email, password string, w io.Writer) bool {
	rep := c.CheckLogin(ctx, email, password)
	ok := rep.Err == nil
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "status\t%d\n", rep.Status)
	fmt.Fprintf(tw, "latency\t%s\n", rep.Latency.Round(time.Millisecond))
	fmt.Fprintf(tw, "attempts\t%d\n", rep.Attempts)
	for _, f := range rep.Fields {
		state := "found"
		if !f.Present {
			state = "missing"
			if f.Required {
				state = "MISSING (required)"
				ok = false
			}
		}
		fmt.Fprintf(tw, "field %s\t%s\t%s\n", f.Field, f.Path, state)
	}
	if rep.Err != nil {
		// The error names the reason and status, never a body or a token.
		fmt.Fprintf(tw, "result\tFAILED: %v\n", rep.Err)
		_ = tw.Flush()
		return false
	}
	res := rep.Result
	fmt.Fprintf(tw, "user id\t%s\n", res.User.ID)
	fmt.Fprintf(tw, "user email\t%s\n", res.User.Email)
	fmt.Fprintf(tw, "user name\t%s\n", res.User.Name)
	fmt.Fprintf(tw, "expires at\t%s\n", res.Tokens.ExpiresAt.UTC().Format(time.RFC3339))
	for _, tok := range []struct{ name, raw string }{{"access token", res.Tokens.AccessToken}, {"id token", res.Tokens.IDToken}} {
		if tok.raw == "" {
			fmt.Fprintf(tw, "%s\tnone\n", tok.name)
			continue
		}
		verdict := "valid"
		cl, err := v.Validate(ctx, tok.raw)
		switch {
		case err != nil:
			verdict, ok = "INVALID: "+err.Error(), false
		case cl.Subject != res.User.ID:
			verdict, ok = fmt.Sprintf("INVALID: subject %q is not the user id", cl.Subject), false
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", tok.name, external.Fingerprint(tok.raw), verdict)
	}
	if res.Tokens.RefreshToken != "" {
		fmt.Fprintf(tw, "refresh token\t%s\n", external.Fingerprint(res.Tokens.RefreshToken))
	} else {
		fmt.Fprintf(tw, "refresh token\tnone (sessions end when the access token expires)\n")
	}
	if ok {
		fmt.Fprintf(tw, "result\tok\n")
	} else {
		fmt.Fprintf(tw, "result\tFAILED\n")
	}
	_ = tw.Flush()
	return ok
}
