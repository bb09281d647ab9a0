package architecture_test

import (
	"fmt"
	"go/types"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

// readapi never writes the log (issue 26: queries do not write). The
// import rules keep commands and the event store adapters out of its
// graph; this rule closes the door left open, the event store port itself,
// which readapi imports for consistency tokens (eventstore.Position). A
// readapi package must not refer to the port's writing vocabulary: the
// Append or Tombstone method of any type of the eventstore packages, or
// the types an append is made of. A query that must leave a trace asks a
// command through a hook wired in cmd/ (readapi.Deps.Authorize).
var logWriting = map[string]bool{
	"Append": true, "Tombstone": true, // methods of the port and the adapters
	"EventData": true, "ExpectedRevision": true, "Any": true, "NoStream": true, "StreamExists": true, "Revision": true,
	"AppendResult": true,
}

// loadTyped type-checks the non-test files of the packages matching
// pattern, with overlay (absolute file name → content) laid over the tree.
func loadTyped(t *testing.T, pattern string, overlay map[string][]byte) []*packages.Package {
	t.Helper()
	cfg := &packages.Config{
		Mode:    packages.NeedName | packages.NeedFiles | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo,
		Dir:     "..",
		Context: t.Context(),
		Overlay: overlay,
	}
	pkgs, err := packages.Load(cfg, pattern)
	if err != nil {
		t.Fatalf("load %s: %v", pattern, err)
	}
	for _, p := range pkgs {
		for _, e := range p.Errors {
			t.Fatalf("load %s: %v", p.PkgPath, e)
		}
	}
	return pkgs
}

// logWrites lists every place in pkgs that refers to the log's writing
// vocabulary, as "file:line: eventstore.Name". (The read API's benchmark,
// which seeds a log, lives in bench/identitybench: ADR 0024.)
func logWrites(pkgs []*packages.Package) []string {
	var out []string
	for _, p := range pkgs {
		for id, obj := range p.TypesInfo.Uses {
			if obj.Pkg() == nil || !under(obj.Pkg().Path(), project("eventstore")) || !logWriting[obj.Name()] {
				continue
			}
			switch obj.(type) {
			case *types.Func, *types.TypeName:
			default:
				continue
			}
			pos := p.Fset.Position(id.Pos())
			out = append(out, fmt.Sprintf("%s:%d: %s.%s", filepath.Base(pos.Filename), pos.Line, obj.Pkg().Name(), obj.Name()))
		}
	}
	slices.Sort(out)
	return out
}

func TestReadAPINeverWritesTheLog(t *testing.T) {
	t.Parallel()
	pkgs := loadTyped(t, project("readapi")+"/...", nil)
	if len(pkgs) == 0 {
		t.Fatal("no readapi package: the rule checks nothing")
	}
	for _, w := range logWrites(pkgs) {
		t.Errorf("readapi writes the log: %s", w)
	}
}

// The rule must be able to fail: a file laid over readapi that appends
// through the port, or through an interface of its own, is caught.
func TestReadAPIRuleCatchesAnAppend(t *testing.T) {
	t.Parallel()
	dir, err := filepath.Abs("../readapi")
	if err != nil {
		t.Fatal(err)
	}
	violation := []byte(`package readapi

import (
	"context"

	"github.com/authledger/authledger/eventstore"
)

func syntheticAppend(ctx context.Context, s eventstore.Store) {
	_, _ = s.Append(ctx, "access-x", eventstore.Any{})
}

type appender interface {
	Append(ctx context.Context, stream string, expected eventstore.ExpectedRevision, evs ...eventstore.EventData) (eventstore.AppendResult, error)
}

var _ appender = eventstore.Store(nil)
`)
	pkgs := loadTyped(t, project("readapi"), map[string][]byte{filepath.Join(dir, "zz_synthetic_violation.go"): violation})
	got := strings.Join(logWrites(pkgs), "\n")
	for _, want := range []string{
		"zz_synthetic_violation.go:10: eventstore.Append",
		"zz_synthetic_violation.go:10: eventstore.Any",
		"zz_synthetic_violation.go:14: eventstore.ExpectedRevision",
		"zz_synthetic_violation.go:14: eventstore.EventData",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("not caught: %s\n(caught:\n%s)", want, got)
		}
	}
}
