package architecture_test

import (
	"fmt"
	"go/ast"
	"go/types"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/tools/go/packages"
)

// Event data is decoded only through the events registry (issue 26 item 2,
// ARCHITECTURE.md rule 7): a reader that unmarshals a recorded event's
// JSON itself bypasses the upcasters, so the day a .v2 is written it reads
// the old shape, or nothing. The rule: outside the packages that store the
// bytes, the Data and Metadata of an eventstore.RecordedEvent are read only
// as the data argument of (*events.Registry).Decode.
//
// Allowed to touch the bytes:
//   - events, whose Registry is the decoder;
//   - the event store adapters (eventstore/...), which store and load them;
//   - the audit trail (projections/audit), which records and hash-chains
//     the bytes as the log holds them: decoding through the registry would
//     make its chain depend on today's upcasters, and a rebuild after an
//     upcaster is added would no longer reproduce it (ADR 0013).
var mayReadEventBytes = []string{project("events"), project("eventstore"), project("projections/audit")}

// eventByteReads lists every read of RecordedEvent.Data or .Metadata in pkgs
// that is not the data argument of Registry.Decode, as "file:line: Field".
func eventByteReads(pkgs []*packages.Package) []string {
	var out []string
	for _, p := range pkgs {
		if under(p.PkgPath, mayReadEventBytes...) {
			continue
		}
		for _, f := range p.Syntax {
			// decodeArgs are the selector expressions passed as the data
			// of a Registry.Decode call.
			decodeArgs := map[ast.Expr]bool{}
			ast.Inspect(f, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok && isRegistryDecode(p.TypesInfo, call) && len(call.Args) == 2 {
					decodeArgs[ast.Unparen(call.Args[1])] = true
				}
				return true
			})
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok || decodeArgs[sel] {
					return true
				}
				s := p.TypesInfo.Selections[sel]
				if s == nil || s.Kind() != types.FieldVal || !isRecordedEvent(s.Recv()) {
					return true
				}
				if name := s.Obj().Name(); name == "Data" || name == "Metadata" {
					pos := p.Fset.Position(sel.Pos())
					out = append(out, fmt.Sprintf("%s:%d: RecordedEvent.%s", filepath.Base(pos.Filename), pos.Line, name))
				}
				return true
			})
		}
	}
	slices.Sort(out)
	return out
}

// isRecordedEvent reports whether t is eventstore.RecordedEvent or a
// pointer to it.
func isRecordedEvent(t types.Type) bool {
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	n, ok := t.(*types.Named)
	return ok && n.Obj().Name() == "RecordedEvent" && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == project("eventstore")
}

// isRegistryDecode reports whether call calls (*events.Registry).Decode.
func isRegistryDecode(info *types.Info, call *ast.CallExpr) bool {
	sel, ok := ast.Unparen(call.Fun).(*ast.SelectorExpr)
	if !ok {
		return false
	}
	fn, ok := info.Uses[sel.Sel].(*types.Func)
	if !ok || fn.Name() != "Decode" || fn.Pkg() == nil || fn.Pkg().Path() != project("events") {
		return false
	}
	recv := fn.Signature().Recv()
	return recv != nil && types.TypeString(recv.Type(), nil) == "*"+project("events")+".Registry"
}

func TestEventDataIsDecodedOnlyThroughTheRegistry(t *testing.T) {
	t.Parallel()
	pkgs := loadTyped(t, module+"/...", nil)
	if len(pkgs) < 20 {
		t.Fatalf("loaded %d packages: the rule checks too little", len(pkgs))
	}
	for _, r := range eventByteReads(pkgs) {
		t.Errorf("event data read outside the registry: %s", r)
	}
}

// The rule must be able to fail: a reactor that unmarshals an event's data
// itself, or hands its metadata to a reader, is caught; the same reactor
// decoding through the registry is not.
func TestDecodingRuleCatchesAHandWrittenDecoder(t *testing.T) {
	t.Parallel()
	dir, err := filepath.Abs("../reactors/sessionlimit")
	if err != nil {
		t.Fatal(err)
	}
	violation := []byte(`package sessionlimit

import (
	"bytes"
	"encoding/json"

	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
)

func syntheticDecode(reg *events.Registry, ev eventstore.RecordedEvent, p *eventstore.RecordedEvent) {
	var started session.Started
	_ = json.Unmarshal(ev.Data, &started)
	_ = bytes.NewReader(p.Metadata)
	_, _ = reg.Decode(ev.Type, ev.Data)
	_, _ = reg.Decode(ev.Type, (p.Data))
}
`)
	pkgs := loadTyped(t, project("reactors/sessionlimit"), map[string][]byte{filepath.Join(dir, "zz_synthetic_violation.go"): violation})
	got := eventByteReads(pkgs)
	want := []string{"zz_synthetic_violation.go:14: RecordedEvent.Data", "zz_synthetic_violation.go:15: RecordedEvent.Metadata"}
	if !slices.Equal(got, want) {
		t.Errorf("caught %q, want %q", got, want)
	}
}
