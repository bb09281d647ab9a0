package tasks

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// Through a real server, a file served by fileWriter arrives whole, a
// Range request gets its slice, and the writer's Size (the access log's
// byte count) is what was sent.
func TestFileWriterSendsTheFileAndCountsIt(t *testing.T) {
	content := make([]byte, 300<<10)
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	r := gin.New()
	sizes := make(chan int, 1)
	r.Use(func(c *gin.Context) {
		c.Next()
		sizes <- c.Writer.Size()
	})
	r.GET("/f", func(c *gin.Context) {
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		fw := &fileWriter{ResponseWriter: c.Writer}
		c.Writer = fw
		c.Header("Content-Type", "application/octet-stream")
		http.ServeContent(fw, c.Request, "", time.Time{}, f)
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	for _, tc := range []struct {
		rangeHeader string
		status      int
		want        []byte
	}{
		{"", http.StatusOK, content},
		{"bytes=1000-70999", http.StatusPartialContent, content[1000:71000]},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/f", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.rangeHeader != "" {
			req.Header.Set("Range", tc.rangeHeader)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.status || !bytes.Equal(body, tc.want) {
			t.Fatalf("range %q: status %d, %d bytes (equal: %v); want %d, %d bytes",
				tc.rangeHeader, res.StatusCode, len(body), bytes.Equal(body, tc.want), tc.status, len(tc.want))
		}
		if got := <-sizes; got != len(tc.want) {
			t.Errorf("range %q: Size() = %d, want %d", tc.rangeHeader, got, len(tc.want))
		}
	}
}
