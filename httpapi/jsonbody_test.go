package httpapi_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/test/openapitest"
)

// BindJSON through an engine with a 64-byte limit on POST /small: what a
// handler sees of each body.
func TestBindJSON(t *testing.T) {
	t.Parallel()
	e, err := httpapi.New(httpapi.Config{Logger: slog.New(slog.DiscardHandler), OpenAPI: []byte("x"),
		Limits: httpapi.Limits{Routes: map[string]httpapi.RouteLimit{"POST /small": {MaxBody: 64}}}})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	h := func(c *gin.Context) {
		var v struct {
			Name string `json:"name"`
		}
		if err := httpapi.BindJSON(c, &v); err != nil {
			httpapi.WriteError(c, err)
			return
		}
		got = v.Name
		c.Status(http.StatusNoContent)
	}
	e.POST("/small", h)
	e.POST("/default", h)
	// The refusals are the shared answers of openapi.yaml.
	checked := openapitest.Handler(t, e, openapitest.TestRoutes("POST /small", "POST /default"))
	for _, tc := range []struct {
		path, body string
		status     int
		name       string
	}{
		{"/small", `{"name":"ada"}`, 204, "ada"},
		{"/small", `{"name":"\ud83d\ude00 \u00e9 \\u \"q\""}`, 204, "😀 é \\u \"q\""},
		{"/small", `{"name":"` + strings.Repeat("a", 64) + `"}`, 413, ""},
		{"/default", `{"name":"` + strings.Repeat("a", 64) + `"}`, 204, strings.Repeat("a", 64)},
		{"/default", `{"name":"` + strings.Repeat("a", httpapi.DefaultMaxBody) + `"}`, 413, ""},
		{"/small", "{\"name\":\"\xed\xa0\x80\"}", 400, ""}, // a surrogate encoded in UTF-8 is invalid UTF-8
		{"/small", `{"name":"\ud800"}`, 400, ""},
		{"/small", `{"name":"\udfff\ud800"}`, 400, ""},
		{"/small", `{"name":"\ud800\u0041"}`, 400, ""},
		{"/small", `{"name":"a\\ud800"}`, 204, `a\ud800`}, // an escaped backslash, then text
		{"/small", `{"name":"a"}  `, 204, "a"},
		{"/small", `{"name":"a"}x`, 400, ""},
		{"/small", `{"nom":"a"}`, 400, ""},
		{"/small", `{"name":1}`, 400, ""},
		{"/small", ``, 400, ""},
	} {
		got = ""
		w := httptest.NewRecorder()
		checked.ServeHTTP(w, httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body)))
		if w.Code != tc.status || got != tc.name {
			t.Errorf("%s %.40q: %d %q, want %d %q (%s)", tc.path, tc.body, w.Code, got, tc.status, tc.name, w.Body)
		}
	}
}
