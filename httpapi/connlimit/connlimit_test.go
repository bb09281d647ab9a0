package connlimit_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/authledger/authledger/httpapi/connlimit"
)

// entered receives once per request that reaches /block.
var entered = make(chan struct{}, 100)

// serve runs a server behind a Limiter of max connections; /block waits
// until release is closed.
func serve(t *testing.T, max int) (addr string, l *connlimit.Limiter, release chan struct{}) {
	t.Helper()
	l, err := connlimit.New(max)
	if err != nil {
		t.Fatal(err)
	}
	release = make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/block", func(w http.ResponseWriter, _ *http.Request) { entered <- struct{}{}; <-release })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: l.Handler(mux), ConnState: l.ConnState, ConnContext: l.ConnContext, ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.Serve(l.Listener(ln)) }()
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
		_ = srv.Close()
	})
	return ln.Addr().String(), l, release
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closed reports whether the server closed c (a read ends in EOF or a
// reset rather than the deadline).
func closed(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// get sends a request on c and reads its answer, leaving c idle.
func get(t *testing.T, c net.Conn, path string) {
	t.Helper()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
}

// waitOpen waits until the limiter counts n connections (the server
// accepts asynchronously).
func waitOpen(t *testing.T, l *connlimit.Limiter, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); l.Stats().Open != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", l.Stats().Open, n)
		}
	}
}

// At the cap an idle keep-alive connection goes first, then the receiving
// one silent for longest; one that keeps sending stays.
func TestEvictsIdleThenTheSlowestReceiving(t *testing.T) {
	t.Parallel()
	addr, l, _ := serve(t, 3)
	idle := dial(t, addr)
	get(t, idle, "/")
	silent := dial(t, addr)
	fmt.Fprint(silent, "GET / HTTP/1.1\r\n")
	talking := dial(t, addr)
	fmt.Fprint(talking, "GET / HTTP/1.1\r\n")
	waitOpen(t, l, 3)
	time.Sleep(20 * time.Millisecond)
	fmt.Fprint(talking, "Host: x\r\n") // heard from after silent

	first := dial(t, addr)
	if !closed(idle, 2*time.Second) {
		t.Fatal("the idle connection was kept at the cap")
	}
	if closed(silent, 100*time.Millisecond) || closed(talking, 100*time.Millisecond) {
		t.Fatal("a receiving connection went before the idle one")
	}
	fmt.Fprint(first, "GET / HTTP/1.1\r\n")
	time.Sleep(20 * time.Millisecond)
	fmt.Fprint(talking, "X-More: 1\r\n")

	second := dial(t, addr)
	if !closed(silent, 2*time.Second) {
		t.Fatal("the silent connection was kept at the cap")
	}
	if closed(talking, 100*time.Millisecond) {
		t.Fatal("the connection still sending was closed before the silent one")
	}
	get(t, second, "/")
	if s := l.Stats(); s.Evicted != 2 || s.Refused != 0 || s.Open != 3 {
		t.Errorf("stats %+v, want 2 evicted, 0 refused, 3 open", s)
	}
}

// When every connection is being answered, a new one is refused (closed
// at once) rather than closing a request in progress; once they finish,
// new connections are served again.
func TestRefusesWhenEveryConnectionIsAnswering(t *testing.T) {
	t.Parallel()
	addr, l, release := serve(t, 2)
	busy := []net.Conn{dial(t, addr), dial(t, addr)}
	for _, c := range busy {
		fmt.Fprint(c, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	<-entered
	<-entered
	extra := dial(t, addr)
	if !closed(extra, 2*time.Second) {
		t.Fatal("a connection past the cap was kept")
	}
	if s := l.Stats(); s.Refused != 1 || s.Evicted != 0 {
		t.Errorf("stats %+v, want 1 refused, none evicted", s)
	}
	for _, c := range busy {
		if closed(c, 100*time.Millisecond) {
			t.Fatal("a connection being answered was closed")
		}
	}
	close(release)
	for _, c := range busy {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("blocked request: %v", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("blocked request: %d", resp.StatusCode)
		}
	}
	get(t, dial(t, addr), "/")
}

// A request whose body is still arriving counts as receiving: it can be
// evicted even though its handler runs.
func TestAHandlerReadingItsBodyIsEvictable(t *testing.T) {
	t.Parallel()
	addr, l, _ := serve(t, 1)
	slow := dial(t, addr)
	fmt.Fprint(slow, "POST /drain HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	waitOpen(t, l, 1)
	time.Sleep(20 * time.Millisecond) // into the handler, which does not read: still receiving
	get(t, dial(t, addr), "/")
	if !closed(slow, 2*time.Second) {
		t.Fatal("the slow body was kept at the cap")
	}
}

func TestNewRefusesAZeroCap(t *testing.T) {
	t.Parallel()
	if _, err := connlimit.New(0); err == nil {
		t.Fatal("New(0) succeeded")
	}
}

// The connections the server sees keep the TCP connection's ReadFrom, so
// downloads still go out with sendfile.
func TestConnectionsKeepReadFrom(t *testing.T) {
	t.Parallel()
	l, err := connlimit.New(1)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client := make(chan net.Conn, 1)
	go func() {
		c, _ := net.Dial("tcp", ln.Addr().String())
		client <- c
	}()
	c, err := l.Listener(ln).Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cc := <-client; cc != nil {
		defer cc.Close()
	}
	if _, ok := c.(io.ReaderFrom); !ok {
		t.Fatalf("%T has no ReadFrom", c)
	}
}
