package console

// api.go calls the API's routes in process, as the signed-in user.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"
)

// errSessionOver is a refresh the API refused: the session was revoked,
// reused or ended; the user signs in again.
var errSessionOver = errors.New("console: the session is over")

// problem is an API refusal (RFC 9457), as the console shows it.
type problem struct {
	Status int    `json:"status"`
	Type   string `json:"type"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	// RetryAfter is the API's Retry-After, when there is one.
	RetryAfter string `json:"-"`
}

func (p *problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Type, p.Detail) }

// retryable says whether trying again may help: the server's trouble,
// not the request's.
func (p *problem) retryable() bool {
	return p.Status >= 500 || p.Status == http.StatusTooManyRequests || p.Status == 0
}

// Message is what the page says.
func (p *problem) Message() string {
	switch {
	case p.Status == 0 || p.Status >= 500:
		return "The server could not answer just now. Nothing was changed; try again in a moment."
	case p.Detail != "":
		return p.Detail
	case p.Title != "":
		return p.Title
	}
	return "The request was refused."
}

// reply is an API answer read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) decode(v any) error { return json.Unmarshal(r.body, v) }

func (r reply) problem() *problem {
	p := &problem{Status: r.status, RetryAfter: r.header.Get("Retry-After")}
	_ = json.Unmarshal(r.body, p)
	p.Status = r.status
	return p
}

// bufferedWriter collects an in-process answer.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedWriter) Header() http.Header { return w.header }
func (w *bufferedWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *bufferedWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

// apiRequest builds the in-process request: the browser's address, user
// agent and forwarding headers go along, so that the API's rate limits,
// login throttle and event metadata see the real client, and the
// console request's id becomes the API request's (one correlation id).
func (c *Console) apiRequest(ctx *gin.Context, method, path string, body io.Reader, contentType, bearer string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx.Request.Context(), method, path, body)
	if err != nil {
		return nil, err
	}
	req.RemoteAddr = ctx.Request.RemoteAddr
	req.Host = ctx.Request.Host
	for _, h := range []string{"User-Agent", "X-Forwarded-For", "X-Forwarded-Proto"} {
		if v := ctx.Request.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	if id := ctx.Writer.Header().Get("X-Request-ID"); id != "" {
		req.Header.Set("X-Request-ID", id)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return req, nil
}

// anonymous calls an API route without a credential (login, register,
// refresh).
func (c *Console) anonymous(ctx *gin.Context, method, path string, body any) (reply, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return reply{}, err
	}
	req, err := c.apiRequest(ctx, method, path, bytes.NewReader(b), "application/json", "")
	if err != nil {
		return reply{}, err
	}
	w := &bufferedWriter{header: http.Header{}}
	c.cfg.API.ServeHTTP(w, req)
	return reply{status: w.status, header: w.header, body: w.body.Bytes()}, nil
}

// refreshEarly is how long before its expiry an access token is
// replaced: a request must not start with a token that expires on its
// way.
const refreshEarly = 10 * time.Second

// fresh returns a state whose access token is not (about to be) expired,
// refreshing it first when needed (and setting the new cookie).
func (c *Console) fresh(ctx *gin.Context, st state, force bool) (state, error) {
	if !force && c.cfg.Now().Add(refreshEarly).Unix() < st.Expires {
		return st, nil
	}
	t, err := c.refreshes.do(st.Refresh, func() (tokens, error) {
		r, err := c.anonymous(ctx, http.MethodPost, "/v1/auth/refresh", map[string]string{"refresh_token": st.Refresh})
		if err != nil {
			return tokens{}, err
		}
		switch {
		case r.status == http.StatusOK:
			var t tokens
			if err := r.decode(&t); err != nil {
				return tokens{}, err
			}
			return t, nil
		case r.status == http.StatusUnauthorized || r.status == http.StatusBadRequest:
			return tokens{}, errSessionOver
		}
		return tokens{}, r.problem()
	})
	if err != nil {
		return st, err
	}
	st = c.signedInState(st.CSRF, t)
	c.writeState(ctx, st)
	return st, nil
}

// call calls an API route as the signed-in user with a body that can be
// sent twice (nil or bytes). An access token the API refuses as expired
// is refreshed once and the call repeated: the user never sees it.
func (c *Console) call(ctx *gin.Context, method, path string, body []byte, contentType string, hdr ...string) (reply, error) {
	st, err := c.fresh(ctx, c.readState(ctx), false)
	if err != nil {
		return reply{}, err
	}
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := c.apiRequest(ctx, method, path, rd, contentType, st.Access)
		if err != nil {
			return reply{}, err
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		w := &bufferedWriter{header: http.Header{}}
		c.cfg.API.ServeHTTP(w, req)
		if w.status == http.StatusUnauthorized && attempt == 0 {
			if st, err = c.fresh(ctx, st, true); err != nil {
				return reply{}, err
			}
			continue
		}
		return reply{status: w.status, header: w.header, body: w.body.Bytes()}, nil
	}
}

// callJSON calls and decodes a 2xx answer into v; any other answer is a
// *problem.
func (c *Console) callJSON(ctx *gin.Context, method, path string, body any, v any, hdr ...string) (reply, error) {
	var b []byte
	ct := ""
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return reply{}, err
		}
		ct = "application/json"
	}
	r, err := c.call(ctx, method, path, b, ct, hdr...)
	if err != nil {
		return r, err
	}
	if r.status < 200 || r.status > 299 {
		return r, r.problem()
	}
	if v != nil && len(r.body) > 0 {
		if err := r.decode(v); err != nil {
			return r, err
		}
	}
	return r, nil
}

// passThrough streams an API answer (a download, an export) to the
// browser as it comes. Only a 401 is held back: the token is refreshed
// and the call repeated, so an expired token never reaches the user.
func (c *Console) passThrough(ctx *gin.Context, method, path string, body []byte, contentType string) error {
	st, err := c.fresh(ctx, c.readState(ctx), false)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := c.apiRequest(ctx, method, path, rd, contentType, st.Access)
		if err != nil {
			return err
		}
		w := &holdUnauthorized{ResponseWriter: ctx.Writer}
		c.cfg.API.ServeHTTP(w, req)
		if w.held && attempt == 0 {
			if st, err = c.fresh(ctx, st, true); err != nil {
				return err
			}
			continue
		}
		if w.held {
			return &problem{Status: http.StatusUnauthorized}
		}
		return nil
	}
}

// holdUnauthorized passes an answer through unless it is a 401, which it
// swallows (headers and body) and marks.
type holdUnauthorized struct {
	http.ResponseWriter
	held, decided bool
	hdr           http.Header
}

func (w *holdUnauthorized) Header() http.Header {
	if w.hdr == nil {
		w.hdr = http.Header{}
	}
	return w.hdr
}

func (w *holdUnauthorized) WriteHeader(status int) {
	if w.decided {
		return
	}
	w.decided = true
	if status == http.StatusUnauthorized {
		w.held = true
		return
	}
	dst := w.ResponseWriter.Header()
	for k, v := range w.hdr {
		// The console's own CSP and framing headers stay; the API's
		// answer headers (type, disposition, length) pass.
		if k == "Content-Security-Policy" {
			continue
		}
		dst[k] = v
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *holdUnauthorized) Write(b []byte) (int, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if w.held {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *holdUnauthorized) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok && !w.held {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (the API's
// stream deadlines).
func (w *holdUnauthorized) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// consistencyToken is the shape of X-Consistency-Token: a command's log
// position that the next page's queries wait for (read your writes).
var consistencyToken = regexp.MustCompile(`^[0-9a-f]{32}$`)

// readAfter is the consistency header pair for the page's ct parameter.
func readAfter(ctx *gin.Context) []string {
	if ct := ctx.Query("ct"); consistencyToken.MatchString(ct) {
		return []string{"X-Consistency-Token", ct}
	}
	return nil
}
