// Package openapitest checks HTTP traffic against openapi.yaml, so that
// the specification cannot drift from the code unnoticed: every request an
// HTTP test sends through the real gin engine, and every answer it gets,
// is validated with kin-openapi (github.com/getkin/kin-openapi), and a
// mismatch fails the test.
//
// Wrap the handler a test serves (Handler), or the client's transport
// when the server runs in another process (Transport). An answer conforms
// when:
//   - its operation is in openapi.yaml, or, for a path the document does
//     not have, it is the documented 404 (components/responses/NotFound),
//     and for a method the path does not have, the documented 405
//     (components/responses/MethodNotAllowed);
//   - its status is documented for the operation;
//   - its documented headers match their schemas, the required ones
//     present;
//   - its Content-Type is one the status documents, and its body matches
//     that media type's schema (application/problem+json included); a
//     status documented without content has no body;
//   - a problem document's status member is the HTTP status;
//   - a request openapi.yaml says is invalid (its parameters, its body, a
//     missing Bearer token) was refused with a 4xx status: tests send
//     invalid requests on purpose, and the server must refuse what the
//     document promises it refuses. A valid request may still be refused
//     (rules no schema states, such as the password policy).
//
// openapi.yaml is OpenAPI 3.1. kin-openapi validates 3.1 documents with a
// JSON Schema 2020-12 validator (type arrays with "null", const, examples),
// which its openapi3filter package enables by itself for a 3.1 document.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"

	"github.com/authledger/authledger"
)

// Spec is openapi.yaml, loaded and checked, ready to validate exchanges.
type Spec struct {
	doc    *openapi3.T
	router routers.Router
	// formats are the string formats openapi.yaml uses that kin-openapi
	// does not check by itself.
	formats []openapi3.SchemaValidationOption
}

var loaded = sync.OnceValues(func() (*Spec, error) { return Parse(authledger.OpenAPI) })

// Load returns openapi.yaml (the embedded copy the server serves), parsed
// once per test binary.
func Load() (*Spec, error) { return loaded() }

// Parse reads an OpenAPI document and validates it as a document.
func Parse(data []byte) (*Spec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("openapitest: load: %w", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableMultiError()); err != nil {
		return nil, fmt.Errorf("openapitest: openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("openapitest: openapi %q, want 3.1", doc.OpenAPI)
	}
	// Tests listen on a random port; the servers entry names the default
	// address only. Route on the path alone.
	routed := *doc
	routed.Servers = nil
	router, err := gorillamux.NewRouter(&routed)
	if err != nil {
		return nil, fmt.Errorf("openapitest: router: %w", err)
	}
	return &Spec{doc: &routed, router: router, formats: []openapi3.SchemaValidationOption{
		openapi3.WithStringFormatValidators(map[string]openapi3.StringFormatValidator{
			"uuid": openapi3.NewCallbackValidator(func(s string) error {
				// The canonical 36-character form, as the server writes it.
				if _, err := uuid.Parse(s); err != nil || len(s) != 36 {
					return fmt.Errorf("not a UUID: %q", s)
				}
				return nil
			}),
			"uri": openapi3.NewCallbackValidator(func(s string) error {
				if u, err := url.Parse(s); err != nil || !u.IsAbs() {
					return fmt.Errorf("not an absolute URI: %q", s)
				}
				return nil
			}),
		}),
	}}, nil
}

// Doc is the parsed document.
func (s *Spec) Doc() *openapi3.T { return s.doc }

// ginParam is a gin path parameter (":id", "*path").
var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// OpenAPIPath turns a gin route path ("/v1/tasks/:id") into the form of
// openapi.yaml's paths ("/v1/tasks/{id}").
func OpenAPIPath(ginPath string) string { return ginParam.ReplaceAllString(ginPath, "{$1}") }

// Describes reports whether openapi.yaml has the operation of a gin
// route (method and path as gin.Engine.Routes lists them).
func (s *Spec) Describes(method, ginPath string) bool {
	item := s.doc.Paths.Value(OpenAPIPath(ginPath))
	return item != nil && item.GetOperation(method) != nil
}

// Exchange is one request and its answer, as a test saw them.
type Exchange struct {
	// Request is the request; its Body is ignored (RequestBody holds it).
	Request *http.Request
	// RequestBody is the body the server read; RequestBodyComplete is set
	// when it is the whole body. An incomplete body (the server refused
	// it unread, or it exceeded what a check keeps) is not validated.
	RequestBody         []byte
	RequestBodyComplete bool
	// Status, Header and Body are the answer; BodyComplete is set when
	// Body is all of it (a body cut short is not validated).
	Status       int
	Header       http.Header
	Body         []byte
	BodyComplete bool
}

// Check validates ex; the error says every way in which it does not
// conform, or is nil.
func (s *Spec) Check(ex Exchange) error {
	req := ex.Request.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(ex.RequestBody))
	req.ContentLength = int64(len(ex.RequestBody))
	// A server-side request has no scheme or host in its URL.
	if req.URL.Host == "" {
		req.URL.Host = req.Host
	}

	route, params, err := s.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		if ex.Status != http.StatusNotFound {
			return fmt.Errorf("no operation has this path, yet the server answered %d: the route is missing from openapi.yaml", ex.Status)
		}
		return s.CheckShared(ex)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		if ex.Status != http.StatusMethodNotAllowed {
			return fmt.Errorf("the path has no operation with this method, yet the server answered %d: the operation is missing from openapi.yaml", ex.Status)
		}
		return s.CheckShared(ex)
	case err != nil:
		return fmt.Errorf("cannot route: %w", err)
	}

	asJSON(req, route.Operation)
	opts := &openapi3filter.Options{
		IncludeResponseStatus:   true,
		MultiError:              true,
		SkipSettingDefaults:     true,
		ExcludeRequestBody:      !ex.RequestBodyComplete,
		AuthenticationFunc:      bearerPresent,
		SchemaValidationOptions: s.formats,
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	var errs []error
	if reqErr := openapi3filter.ValidateRequest(context.Background(), in); reqErr != nil && ex.Status < 400 {
		errs = append(errs, fmt.Errorf("the server accepted (%d) a request openapi.yaml says is invalid: %w", ex.Status, reqErr))
	}

	// The response is checked whatever the request was.
	in.Options = &openapi3filter.Options{
		IncludeResponseStatus:   true,
		MultiError:              true,
		ExcludeResponseBody:     !ex.BodyComplete,
		SchemaValidationOptions: s.formats,
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: ex.Status, Header: ex.Header, Options: in.Options}
	out.SetBodyBytes(ex.Body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		errs = append(errs, err)
	}
	if doc := route.Operation.Responses.Status(ex.Status); doc != nil && doc.Value != nil {
		errs = append(errs, bodyAsDocumented(doc.Value, ex)...)
	}
	errs = append(errs, problemStatus(ex)...)
	errs = append(errs, s.requestID(ex)...)
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w", route.Operation.OperationID, errors.Join(errs...))
	}
	return nil
}

// shared names the components/responses entry that answers a status
// whatever the operation: the middleware and WriteError give these.
var shared = map[int]string{
	http.StatusBadRequest:            "InvalidInput",
	http.StatusUnauthorized:          "Unauthenticated",
	http.StatusForbidden:             "Forbidden",
	http.StatusNotFound:              "NotFound",
	http.StatusMethodNotAllowed:      "MethodNotAllowed",
	http.StatusRequestEntityTooLarge: "TooLarge",
	http.StatusUnsupportedMediaType:  "UnsupportedType",
	http.StatusTooManyRequests:       "RateLimited",
	http.StatusInternalServerError:   "InternalError",
	http.StatusServiceUnavailable:    "Unavailable",
	http.StatusInsufficientStorage:   "StorageFull",
}

// CheckShared validates an error answer that no operation describes (an
// unknown path or method) against the shared response of its status in
// components/responses, slug included.
func (s *Spec) CheckShared(ex Exchange) error { return s.checkShared(ex, true) }

// CheckRefusal validates a refusal of a test's own route: a problem
// document (components/schemas/Problem, whatever its slug: the handler
// chooses it) with the headers of the shared response of its status
// (Retry-After with 429 and 503, Allow with 405).
func (s *Spec) CheckRefusal(ex Exchange) error { return s.checkShared(ex, false) }

func (s *Spec) checkShared(ex Exchange, slug bool) error {
	name := shared[ex.Status]
	ref := s.doc.Components.Responses[name]
	if name != "" && (ref == nil || ref.Value == nil) {
		return fmt.Errorf("openapi.yaml has no components/responses/%s for status %d", name, ex.Status)
	}
	if !slug || name == "" {
		resp := openapi3.NewResponse().WithDescription("a problem").
			WithContent(openapi3.Content{"application/problem+json": openapi3.NewMediaType().WithSchemaRef(s.doc.Components.Schemas["Problem"])})
		if ref != nil {
			resp.Headers = ref.Value.Headers
		}
		if name == "" {
			name = "Problem"
		}
		ref = &openapi3.ResponseRef{Value: resp}
	}
	// Validate as an operation whose only answer is the shared one.
	route := &routers.Route{Spec: s.doc, Path: ex.Request.URL.Path, Method: ex.Request.Method, PathItem: &openapi3.PathItem{},
		Operation: &openapi3.Operation{OperationID: name, Responses: openapi3.NewResponses(openapi3.WithStatus(ex.Status, ref))}}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, ExcludeResponseBody: !ex.BodyComplete, SchemaValidationOptions: s.formats}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: ex.Request, Route: route, Options: opts},
		Status:                 ex.Status, Header: ex.Header, Options: opts,
	}
	out.SetBodyBytes(ex.Body)
	errs := []error{openapi3filter.ValidateResponse(context.Background(), out)}
	errs = append(errs, bodyAsDocumented(ref.Value, ex)...)
	errs = append(errs, problemStatus(ex)...)
	errs = append(errs, s.requestID(ex)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("components/responses/%s: %w", name, err)
	}
	return nil
}

// asJSON gives req the Content-Type of a JSON body when that is the only
// one the operation takes: the server reads such a body as JSON whatever
// its Content-Type says (httpapi.BindJSON; curl -d sends a form type), and
// openapi.yaml says so.
func asJSON(req *http.Request, op *openapi3.Operation) {
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return
	}
	content := op.RequestBody.Value.Content
	if len(content) == 1 && content.Get("application/json") != nil {
		req.Header.Set("Content-Type", "application/json")
	}
}

// bodyAsDocumented reports a body sent with a status documented without
// content (kin-openapi accepts any body then).
func bodyAsDocumented(doc *openapi3.Response, ex Exchange) []error {
	if len(doc.Content) == 0 && len(ex.Body) > 0 {
		return []error{fmt.Errorf("status %d is documented without a body, yet has %d bytes (%s)", ex.Status, len(ex.Body), ex.Header.Get("Content-Type"))}
	}
	return nil
}

// requestID reports an answer without a valid X-Request-ID: every answer
// carries one (info.description's conventions), of the form of
// components/headers/X-Request-ID.
func (s *Spec) requestID(ex Exchange) []error {
	h := s.doc.Components.Headers["X-Request-ID"]
	if h == nil || h.Value == nil || h.Value.Schema == nil {
		return []error{errors.New("openapi.yaml has no components/headers/X-Request-ID")}
	}
	v := ex.Header.Get("X-Request-ID")
	if v == "" {
		return []error{errors.New("the answer has no X-Request-ID")}
	}
	if err := h.Value.Schema.Value.VisitJSON(v, append(s.formats, openapi3.EnableJSONSchema2020())...); err != nil {
		return []error{fmt.Errorf("X-Request-ID %q: %w", v, err)}
	}
	return nil
}

// problemStatus reports a problem document whose status member is not
// the HTTP status (RFC 9457 section 3.1.3: they must agree).
func problemStatus(ex Exchange) []error {
	mt, _, _ := mime.ParseMediaType(ex.Header.Get("Content-Type"))
	if mt != "application/problem+json" || !ex.BodyComplete {
		return nil
	}
	var p struct {
		Status int `json:"status"`
	}
	if err := json.Unmarshal(ex.Body, &p); err != nil || p.Status != ex.Status {
		return []error{fmt.Errorf("problem document's status %d is not the HTTP status %d", p.Status, ex.Status)}
	}
	return nil
}

// bearerPresent is the authentication check of request validation: an
// operation that requires the bearer scheme needs an Authorization header
// of that scheme (whether the token is good is the server's to say: a bad
// one must answer 401, which the status check holds).
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	if in.SecurityScheme.Type == "http" && strings.EqualFold(in.SecurityScheme.Scheme, "bearer") {
		scheme, tok, _ := strings.Cut(h.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return in.NewError(errors.New("no Bearer token"))
		}
		return nil
	}
	return in.NewError(fmt.Errorf("security scheme %q is not known to openapitest", in.SecuritySchemeName))
}

// Option adjusts what Handler and Transport check.
type Option func(*config)

type config struct {
	own  []string
	auth string
}

// TestRoutes names routes of the test's own ("GET /v1/auth/probe", the
// path as sent), which openapi.yaml rightly does not describe. Their
// successes are not checked; their refusals, made by the shared
// middleware and WriteError, must be problem documents with the headers
// of the shared answers of components/responses (CheckRefusal).
func TestRoutes(routes ...string) Option {
	return func(c *config) { c.own = append(c.own, routes...) }
}

// AuthHeader names a header that stands in for the Bearer token: a test
// that mounts the routes behind its own authentication (an X-Test-User
// header) still has its unauthenticated requests checked.
func AuthHeader(name string) Option {
	return func(c *config) { c.auth = name }
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return c
}

func (c config) testRoute(r *http.Request) bool {
	return slices.Contains(c.own, r.Method+" "+r.URL.Path)
}

// prepare stands the test's authentication header in for a Bearer token.
func (c config) prepare(r *http.Request) *http.Request {
	if c.auth == "" || r.Header.Get("Authorization") != "" {
		return r
	}
	r = r.Clone(r.Context())
	if r.Header.Get(c.auth) != "" {
		r.Header.Set("Authorization", "Bearer stand-in")
	}
	return r
}

// report fails t with a message naming the exchange.
func report(t testing.TB, ex Exchange, err error) {
	t.Helper()
	body := ex.Body
	if len(body) > 2048 {
		body = append(body[:2048:2048], "..."...)
	}
	t.Errorf("openapi.yaml does not describe %s %s answered %d (Content-Type %q): %v\nanswer body: %s",
		ex.Request.Method, ex.Request.URL.RequestURI(), ex.Status, ex.Header.Get("Content-Type"), err, body)
}

// check validates ex and reports a mismatch.
func check(t testing.TB, c config, ex Exchange) {
	t.Helper()
	spec, err := Load()
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	if c.testRoute(ex.Request) {
		if ex.Status >= 400 {
			err = spec.CheckRefusal(ex)
		}
	} else {
		ex.Request = c.prepare(ex.Request)
		err = spec.Check(ex)
	}
	if err != nil {
		report(t, ex, err)
	}
}

// An upstream sign-in's failed callback answers a browser with an HTML
// page (httpapi.WriteErrorPage): decoded as a string, checked against its
// text/html schema.
func init() {
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder)
}
