package console

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testKey() []byte { return bytes.Repeat([]byte{7}, 32) }

func TestSealedStateRoundTripsAndRefusesTampering(t *testing.T) {
	t.Parallel()
	s, err := newSealer(testKey(), cookieName(false))
	if err != nil {
		t.Fatal(err)
	}
	st := state{CSRF: "C", Access: "eyJ.a.b", Refresh: "r", Session: "s", Expires: 42}
	v, err := s.seal(st)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v, "eyJ") {
		t.Fatal("the sealed cookie shows the token")
	}
	got, err := s.open(v)
	if err != nil || got != st {
		t.Fatalf("open: %+v %v", got, err)
	}
	// A flipped byte, another key, another cookie name: none opens.
	raw := []byte(v)
	raw[len(raw)-3] ^= 1
	other, _ := newSealer(bytes.Repeat([]byte{8}, 32), cookieName(false))
	renamed, _ := newSealer(testKey(), cookieName(true))
	for name, open := range map[string]func() error{
		"tampered":    func() error { _, err := s.open(string(raw)); return err },
		"another key": func() error { _, err := other.open(v); return err },
		"renamed":     func() error { _, err := renamed.open(v); return err },
		"garbage":     func() error { _, err := s.open("!!"); return err },
	} {
		if err := open(); !errors.Is(err, errBadCookie) {
			t.Errorf("%s: %v, want errBadCookie", name, err)
		}
	}
}

// Many requests finding one expired token refresh it once (a second use
// of a refresh token would revoke the session), and one that comes a
// little later with the old token gets the same new tokens.
func TestOneRefreshPerRefreshToken(t *testing.T) {
	t.Parallel()
	g := newRefreshGroup(time.Now)
	var calls atomic.Int32
	release := make(chan struct{})
	refresh := func() (tokens, error) {
		calls.Add(1)
		<-release
		return tokens{Access: "new", Refresh: "r2"}, nil
	}
	var wg sync.WaitGroup
	results := make(chan tokens, 10)
	for range 10 {
		wg.Go(func() {
			tk, err := g.do("r1", refresh)
			if err != nil {
				t.Error(err)
			}
			results <- tk
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	close(results)
	for tk := range results {
		if tk.Refresh != "r2" {
			t.Errorf("got %+v", tk)
		}
	}
	if late, _ := g.do("r1", refresh); late.Refresh != "r2" || calls.Load() != 1 {
		t.Errorf("late caller: %+v after %d refreshes, want one", late, calls.Load())
	}
	// A transient failure is not remembered; the next request retries.
	fails := 0
	flaky := func() (tokens, error) {
		fails++
		if fails == 1 {
			return tokens{}, &problem{Status: http.StatusServiceUnavailable}
		}
		return tokens{Refresh: "r4"}, nil
	}
	if _, err := g.do("r3", flaky); err == nil {
		t.Fatal("the failure was not returned")
	}
	if tk, err := g.do("r3", flaky); err != nil || tk.Refresh != "r4" {
		t.Errorf("retry after a transient failure: %+v %v", tk, err)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	err := Config{Key: []byte("short"), Nav: []NavItem{{Path: "mfa"}}}.Validate()
	for _, want := range []string{"API", "Key", "Upload", "mfa"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}

// Every page template parses and draws with an empty page (a template
// that names a missing field fails here, not in front of a user).
func TestPagesDraw(t *testing.T) {
	t.Parallel()
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range pageNames {
		var b bytes.Buffer
		p := page{Title: name, Name: "N", Nav: builtinNav, History: &historyView{}, Task: &taskView{}, Profile: &profile{}, Stats: &statsView{}, Upload: &uploadView{}}
		if err := pages[name].ExecuteTemplate(&b, "layout.html", p); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if strings.Contains(b.String(), "<script>") || strings.Contains(b.String(), " style=") || strings.Contains(b.String(), "<style") {
			t.Errorf("%s has inline script or style, which the CSP refuses", name)
		}
	}
}
