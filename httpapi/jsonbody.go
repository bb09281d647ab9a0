package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/authledger/authledger/httpapi/problem"
)

// BindJSON is the one way a handler reads a JSON body into v (a pointer to
// a struct). The body, bounded by the route's limit (Config.Limits), must
// be exactly one JSON value of v's shape: no unknown member, nothing after
// it, and valid UTF-8 throughout, escapes included (encoding/json would
// silently turn invalid bytes and lone surrogates into U+FFFD and store
// text the client never sent). The Content-Type is not checked: curl -d
// sends a form type with JSON in it.
//
// The error is a *problem.Error for the handler to pass to WriteError:
// too-large past the limit, invalid-input otherwise, naming the field
// "body".
func BindJSON(c *gin.Context, v any) error {
	body := c.Request.Body
	if body == nil {
		body = http.NoBody
	}
	if _, bounded := c.Get(keyBodyLimit); !bounded {
		// An engine built without the limits middleware (a test's) still
		// reads no more than the default.
		body = http.MaxBytesReader(rawWriter(c.Writer), body, DefaultMaxBody)
		c.Request.Body = body
	}
	raw, err := io.ReadAll(body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return tooLarge(tooBig.Limit).WithCause(err)
	case err != nil:
		return invalidBody("could not be read completely").WithCause(err)
	case !utf8.Valid(raw):
		return invalidBody("must be valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidBody(decodeMessage(err)).WithCause(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalidBody("must hold one JSON value and nothing after it")
	}
	if loneSurrogate(raw) {
		return invalidBody("must be valid UTF-8 (a \\u escape names half of a surrogate pair)")
	}
	return nil
}

func invalidBody(msg string) *problem.Error {
	return problem.Invalid("The request body is not valid JSON for this endpoint.", problem.FieldError{Field: "body", Message: msg})
}

// decodeMessage says what is wrong with a body encoding/json refused,
// without echoing Go type names.
func decodeMessage(err error) string {
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("%s has the wrong type", typ.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	// Syntax errors, an empty body, a value that is not an object, and
	// the errors of custom unmarshalers.
	return "must be a JSON object with the fields this endpoint documents"
}

// loneSurrogate reports whether raw (valid JSON text) holds a \u escape
// of a UTF-16 surrogate that is not half of a pair. Outside strings JSON
// has no backslash, so every backslash starts an escape.
func loneSurrogate(raw []byte) bool {
	hex := func(i int) (rune, bool) {
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r, ok := hex(i)
		if !ok {
			i++ // a two-character escape such as \\ or \"
			continue
		}
		i += 5
		if !utf16.IsSurrogate(r) {
			continue
		}
		low, ok := hex(i + 1)
		if r >= 0xDC00 || !ok || utf16.DecodeRune(r, low) == utf8.RuneError {
			return true
		}
		i += 6
	}
	return false
}
