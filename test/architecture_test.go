// Package architecture_test enforces the import rules of ARCHITECTURE.md on
// the real package graph (`go list -deps -json`): a change that breaks one
// fails `make test` with the chain of imports that does it.
package architecture_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/authledger/authledger"

// pkg is the part of `go list -json` output the rules need. Imports are
// the non-test imports: what a test file imports does not count.
type pkg struct {
	ImportPath string
	Imports    []string
	Standard   bool
}

// rule forbids packages matching Subject to depend, directly or through
// other packages, on packages matching Forbidden.
type rule struct {
	Name      string
	Subject   func(path string) bool
	Forbidden func(dep string) bool
}

// under reports whether path is p or one of its subpackages.
func under(path string, prefixes ...string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

func project(rel string) string { return module + "/" + rel }

// testSupport reports whether p is a test-support package outside test/
// (eventstore/eventstoretest, projections/projtest): by Go convention its
// name ends in "test", like net/http/httptest. Such a package may use test/
// helpers; a production package reaching it is caught by the rule below,
// since the search goes through it.
func testSupport(p string) bool { return strings.HasSuffix(p[strings.LastIndex(p, "/")+1:], "test") }

// rules are ARCHITECTURE.md's import rules.
var rules = []rule{
	{
		Name:    "domain is pure: no database, HTTP, JWT, Watermill or EventStoreDB package",
		Subject: func(p string) bool { return under(p, project("domain")) },
		Forbidden: func(d string) bool {
			return under(d,
				"database/sql", "net/http",
				"github.com/jackc", "github.com/lib/pq",
				"github.com/gin-gonic", "github.com/go-chi", "github.com/labstack/echo",
				"github.com/lestrrat-go/jwx", "github.com/golang-jwt", "github.com/go-jose", "gopkg.in/square/go-jose.v2",
				"github.com/ThreeDotsLabs/watermill",
				"github.com/EventStore", "google.golang.org/grpc",
			)
		},
	},
	{
		Name:      "events imports no other package of the project",
		Subject:   func(p string) bool { return under(p, project("events")) },
		Forbidden: func(d string) bool { return under(d, module) && !under(d, project("events")) },
	},
	{
		Name:      "readapi and projections never import commands",
		Subject:   func(p string) bool { return under(p, project("readapi"), project("projections")) },
		Forbidden: func(d string) bool { return under(d, project("commands")) },
	},
	{
		Name:      "readapi never writes the log: no event store adapter (see also TestReadAPINeverWritesTheLog)",
		Subject:   func(p string) bool { return under(p, project("readapi")) },
		Forbidden: func(d string) bool { return under(d, project("eventstore/pg"), project("eventstore/esdb")) },
	},
	{
		Name:      "commands read only the event store: no readapi or projections import",
		Subject:   func(p string) bool { return under(p, project("commands")) },
		Forbidden: func(d string) bool { return under(d, project("readapi"), project("projections")) },
	},
	{
		// ADR 0036: the console calls the API's routes in process and
		// holds no rule of its own; no package of the project at all.
		Name:      "the console imports no package of the project: it reaches everything through the API's routes",
		Subject:   func(p string) bool { return under(p, project("console")) },
		Forbidden: func(d string) bool { return under(d, module) && !under(d, project("console")) },
	},
	{
		// ADR 0024: benchmarks live under bench/ and run as
		// authledger-bench; a package named like one (tasksbench) counts
		// wherever it is.
		Name:    "the server links no benchmark code: no bench/ or *bench package in cmd/authledger's graph",
		Subject: func(p string) bool { return p == project("cmd/authledger") },
		Forbidden: func(d string) bool {
			return under(d, project("bench")) || under(d, module) && strings.HasSuffix(d, "bench")
		},
	},
	{
		// The benchmarks are not production (the rule above keeps them out
		// of the server): they may run test fakes, such as the external
		// auth provider that no real one can replace here (ADR 0024).
		Name: "no production package imports test/, directly or through a test-support package",
		Subject: func(p string) bool {
			return under(p, module) && !under(p, project("test"), project("bench"), project("cmd/authledger-bench")) && !testSupport(p)
		},
		Forbidden: func(d string) bool { return under(d, project("test")) },
	},
}

type violation struct {
	Rule  string
	Chain []string // subject first, forbidden package last
}

func (v violation) String() string {
	return v.Rule + ":\n    " + strings.Join(v.Chain, "\n      -> ")
}

// check returns every violation of rules in the package graph, each with
// the shortest import chain from a subject to a forbidden package.
//
// The search follows the project's own packages transitively but stops at
// third-party and standard packages: what a dependency needs internally
// (github.com/google/uuid implements database/sql/driver.Valuer) is not an
// import of ours, while domain reaching pgx through one of our packages is.
func check(pkgs []pkg, rules []rule) []violation {
	imports := make(map[string][]string, len(pkgs))
	for _, p := range pkgs {
		imports[p.ImportPath] = p.Imports
	}
	var out []violation
	for _, p := range pkgs {
		for _, r := range rules {
			if !r.Subject(p.ImportPath) {
				continue
			}
			if chain := shortestChain(p.ImportPath, imports, r.Forbidden); chain != nil {
				out = append(out, violation{Rule: r.Name, Chain: chain})
			}
		}
	}
	return out
}

// shortestChain searches the imports of from breadth-first for a package
// that is forbidden and returns the path to it, or nil.
func shortestChain(from string, imports map[string][]string, forbidden func(string) bool) []string {
	parent := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, next := range imports[cur] {
			if _, seen := parent[next]; seen {
				continue
			}
			parent[next] = cur
			if forbidden(next) {
				var chain []string
				for n := next; n != ""; n = parent[n] {
					chain = append(chain, n)
				}
				slices.Reverse(chain)
				return chain
			}
			if under(next, module) {
				queue = append(queue, next)
			}
		}
	}
	return nil
}

// listPackages runs `go list -e -deps -json` over the whole module. -e
// keeps a package that does not compile in the graph (its imports still
// parse), so that the rules are checked even while the tree is broken.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", "list", "-e", "-deps", "-json", module+"/...")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestImportRules(t *testing.T) {
	t.Parallel()
	pkgs := listPackages(t)

	// A rule whose subject does not exist would pass vacuously.
	for _, dir := range []string{"domain", "events"} {
		if !slices.ContainsFunc(pkgs, func(p pkg) bool { return under(p.ImportPath, project(dir)) }) {
			t.Errorf("no package under %s/: the rule about it checks nothing", dir)
		}
	}
	for _, v := range check(pkgs, rules) {
		t.Errorf("import rule broken: %s", v)
	}
}

// The detector must be able to fail: each rule is fed a synthetic graph
// that breaks it (directly and through an intermediate package), and a
// graph that keeps every rule passes.
func TestRulesCatchViolations(t *testing.T) {
	t.Parallel()
	p := project
	graph := func(edges map[string][]string) []pkg {
		var out []pkg
		for from, to := range edges {
			out = append(out, pkg{ImportPath: from, Imports: to})
		}
		slices.SortFunc(out, func(a, b pkg) int { return strings.Compare(a.ImportPath, b.ImportPath) })
		return out
	}
	cases := []struct {
		name  string
		edges map[string][]string
		chain []string // the expected violation; nil means none
	}{
		{"domain imports pgx", map[string][]string{
			p("domain/user"): {"github.com/jackc/pgx/v5"},
		}, []string{p("domain/user"), "github.com/jackc/pgx/v5"}},
		{"domain reaches gin through another package", map[string][]string{
			p("domain/user"):           {p("events"), p("auth/token")},
			p("auth/token"):            {"github.com/gin-gonic/gin"},
			p("events"):                {"github.com/google/uuid"},
			"github.com/gin-gonic/gin": {"net/http"},
		}, []string{p("domain/user"), p("auth/token"), "github.com/gin-gonic/gin"}},
		{"domain imports net/http", map[string][]string{p("domain"): {"net/http"}}, []string{p("domain"), "net/http"}},
		{"domain imports database/sql", map[string][]string{p("domain/x"): {"database/sql"}}, []string{p("domain/x"), "database/sql"}},
		{"domain imports jwx", map[string][]string{p("domain/x"): {"github.com/lestrrat-go/jwx/v3/jwt"}}, []string{p("domain/x"), "github.com/lestrrat-go/jwx/v3/jwt"}},
		{"domain imports watermill", map[string][]string{p("domain/x"): {"github.com/ThreeDotsLabs/watermill/message"}}, []string{p("domain/x"), "github.com/ThreeDotsLabs/watermill/message"}},
		{"domain imports the ESDB client", map[string][]string{p("domain/x"): {"github.com/EventStore/EventStore-Client-Go/v4/esdb"}}, []string{p("domain/x"), "github.com/EventStore/EventStore-Client-Go/v4/esdb"}},
		{"domain imports grpc", map[string][]string{p("domain/x"): {"google.golang.org/grpc"}}, []string{p("domain/x"), "google.golang.org/grpc"}},
		{"events imports the event store", map[string][]string{p("events"): {p("eventstore")}}, []string{p("events"), p("eventstore")}},
		{"readapi imports commands", map[string][]string{p("readapi"): {p("commands")}}, []string{p("readapi"), p("commands")}},
		{"projections reach commands", map[string][]string{
			p("projections/audit"): {p("auth/token")},
			p("auth/token"):        {p("commands/identity")},
		}, []string{p("projections/audit"), p("auth/token"), p("commands/identity")}},
		{"readapi reaches an event store adapter", map[string][]string{
			p("readapi"):    {p("auth/token")},
			p("auth/token"): {p("eventstore/pg")},
		}, []string{p("readapi"), p("auth/token"), p("eventstore/pg")}},
		{"commands read a read model", map[string][]string{p("commands"): {p("projections/userviews")}}, []string{p("commands"), p("projections/userviews")}},
		{"commands reach readapi through another package", map[string][]string{
			p("commands"):   {p("auth/token")},
			p("auth/token"): {p("readapi")},
		}, []string{p("commands"), p("auth/token"), p("readapi")}},
		{"production code imports test/", map[string][]string{p("eventstore/pg"): {p("test/pgtest")}}, []string{p("eventstore/pg"), p("test/pgtest")}},
		{"production code reaches test/ through a test-support package", map[string][]string{
			p("readapi"):              {p("projections/projtest")},
			p("projections/projtest"): {p("test/pgtest")},
		}, []string{p("readapi"), p("projections/projtest"), p("test/pgtest")}},
		{"the server imports the benchmarks", map[string][]string{p("cmd/authledger"): {p("bench")}}, []string{p("cmd/authledger"), p("bench")}},
		{"the server reaches a benchmark package elsewhere", map[string][]string{
			p("cmd/authledger"): {p("readapi")},
			p("readapi"):        {p("readapi/querybench")},
		}, []string{p("cmd/authledger"), p("readapi"), p("readapi/querybench")}},
		{"clean graph", map[string][]string{
			p("cmd/authledger-bench"):      {p("bench"), p("bench/loadgen")},
			p("bench"):                     {p("test/extauthserver")},
			"github.com/google/uuid":       {"database/sql/driver"},
			p("projections/projtest"):      {p("test/pgtest")},
			p("eventstore/eventstoretest"): {p("test/pgtest"), p("eventstore")},
			p("domain/user"):               {p("events"), p("httpapi/problem"), "errors", "github.com/google/uuid"},
			p("events"):                    {"encoding/json", "github.com/google/uuid"},
			p("commands/identity"):         {p("domain/user"), p("eventstore")},
			p("readapi"):                   {p("projections"), p("eventstore"), "github.com/jackc/pgx/v5", "github.com/gin-gonic/gin"},
			p("test/pgtest"):               {p("test/esdbserver")},
			p("cmd/authledger"):            {p("commands/identity"), p("readapi"), "net/http"},
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := check(graph(tc.edges), rules)
			switch {
			case tc.chain == nil && len(got) > 0:
				t.Errorf("false positives: %v", got)
			case tc.chain != nil && len(got) == 0:
				t.Errorf("violation %s not caught", strings.Join(tc.chain, " -> "))
			case tc.chain != nil && fmt.Sprint(got[0].Chain) != fmt.Sprint(tc.chain):
				t.Errorf("chain %v, want %v", got[0].Chain, tc.chain)
			}
		})
	}
}
