package openapitest

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// maxKept bounds what a check keeps of a request or answer body: the
// upload tests send files of tens of megabytes, and a body cut at the
// bound is checked for everything but its content.
const maxKept = 4 << 20

// Handler returns h wrapped so that every request it serves, and the
// answer it gives, is checked against openapi.yaml; a mismatch fails t
// (from the server's goroutine: t.Errorf is safe there, and the test's
// own assertions carry on).
//
// The wrapper changes nothing the handler sees: the request body is read
// by the handler alone (a copy is kept as it reads, so a body refused
// unread stays unread), the writer passes flushes, hijacks and deadlines
// (http.ResponseController) through, and a handler that panics
// (http.ErrAbortHandler, a cut stream) is not checked.
func Handler(t testing.TB, h http.Handler, opts ...Option) http.Handler {
	c := newConfig(opts)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body *teeBody
		if r.Body != nil && r.Body != http.NoBody {
			body = &teeBody{r: r.Body}
			r.Body = body
		}
		rec := &recorder{w: w}
		// Keep the request as it came: handlers may change r's fields.
		orig := r.Clone(r.Context())
		h.ServeHTTP(rec, r)
		if rec.hijacked {
			return
		}
		ex := Exchange{Request: orig, RequestBodyComplete: true}
		if body != nil {
			ex.RequestBody, ex.RequestBodyComplete = body.kept()
		}
		ex.Status, ex.Header, ex.Body, ex.BodyComplete = rec.result()
		check(t, c, ex)
	})
}

// teeBody keeps a copy of what the handler reads, up to maxKept.
type teeBody struct {
	r io.ReadCloser

	mu   sync.Mutex
	buf  bytes.Buffer
	eof  bool
	over bool
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+n > maxKept {
		b.over = true
	} else {
		b.buf.Write(p[:n])
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *teeBody) Close() error { return b.r.Close() }

func (b *teeBody) kept() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes()), b.eof && !b.over
}

// recorder passes the answer through and keeps its status, its headers
// as they were sent, and up to maxKept of its body.
type recorder struct {
	w http.ResponseWriter

	status   int
	header   http.Header
	body     bytes.Buffer
	over     bool
	hijacked bool
}

func (r *recorder) Header() http.Header { return r.w.Header() }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
		r.header = r.w.Header().Clone()
	}
	r.w.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if r.body.Len()+len(p) > maxKept {
		r.over = true
	} else {
		r.body.Write(p)
	}
	return r.w.Write(p)
}

// Flush passes a flush through (the export streams).
func (r *recorder) Flush() {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(r.w).Flush()
}

// Hijack passes a hijack through; the exchange is then not checked.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.hijacked = true
	return http.NewResponseController(r.w).Hijack()
}

// Unwrap lets http.ResponseController reach the server's writer (the
// route deadlines), and http.MaxBytesReader close the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.w }

func (r *recorder) result() (int, http.Header, []byte, bool) {
	if r.status == 0 {
		// Nothing written: net/http answers 200 with no body.
		return http.StatusOK, r.w.Header().Clone(), nil, true
	}
	return r.status, r.header, bytes.Clone(r.body.Bytes()), !r.over
}

// Transport returns rt (http.DefaultTransport when nil) wrapped so that
// every request sent through it, and its answer, is checked against
// openapi.yaml; a mismatch fails t. For a server in another process,
// where Handler cannot reach; the answer's body is read whole before the
// caller sees it.
func Transport(t testing.TB, rt http.RoundTripper, opts ...Option) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &transport{t: t, rt: rt, c: newConfig(opts)}
}

type transport struct {
	t  testing.TB
	rt http.RoundTripper
	c  config
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := tr.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, readErr := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	// The caller gets the same bytes, and the same failure after them.
	resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{readErr}))
	if readErr == nil {
		check(tr.t, tr.c, Exchange{
			Request: req, RequestBody: reqBody, RequestBodyComplete: true,
			Status: resp.StatusCode, Header: resp.Header, Body: body, BodyComplete: true,
		})
	}
	return resp, nil
}

// errReader fails with err, or ends when err is nil.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	return 0, io.EOF
}
