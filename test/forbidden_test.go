package architecture

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// forbiddenAnswerers are the only files that may build a 403: the
// vocabulary itself and the one authorization decision
// (httpapi.Authorize, docs/adr/0025).
var forbiddenAnswerers = map[string]bool{
	"httpapi/problem/problem.go": true,
	"httpapi/authorize.go":       true,
}

// forbiddenElsewhere are the other 403s, each with its reason (one reason
// per occurrence in the file): none of them is a permission decision
// about a caller of ours.
var forbiddenElsewhere = map[string][]string{
	// GitHub answers 403 for "not a member"; read, never answered.
	"auth/upstream/github.go: http.StatusForbidden": {"reads GitHub's answer to the organisation check"},
	// A provider account that may not sign in here (unverified address,
	// no account and no provisioning, a domain or tenant not allowed):
	// a sign-in refused before there is a caller, not a route's permission.
	"httpapi/errtable/errtable.go: problem.KindForbidden": {"upstream-sign-in-refused (docs/adr/0027)",
		// A login refused until the current terms are accepted: a
		// precondition of the account, not a route's permission.
		"terms-acceptance-required (docs/adr/0034)"},
	// The console's CSRF check: a form that did not come from this site,
	// refused before any caller or permission is looked at (ADR 0036).
	"console/guard.go: http.StatusForbidden": {"the console refuses a cross-site or token-less form post"},
}

// No production code outside httpapi.Authorize answers 403: it neither
// calls problem.Forbidden nor names problem.KindForbidden or
// http.StatusForbidden. A route that must refuse asks Authorize (or
// answers 404 when the resource must stay hidden).
func TestOnlyAuthorizeAnswersForbidden(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..")
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "test" || rel == "bin" || strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || forbiddenAnswerers[rel] {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok {
				name := x.Name + "." + sel.Sel.Name
				switch name {
				case "problem.Forbidden", "problem.KindForbidden", "http.StatusForbidden":
					found = append(found, rel+": "+name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	excused := map[string]int{}
	for _, f := range found {
		// Each excuse covers one occurrence: a second 403 in the same
		// file is a new one and needs its own reason.
		if excused[f] < len(forbiddenElsewhere[f]) {
			excused[f]++
			continue
		}
		t.Errorf("%s: only httpapi.Authorize answers 403", f)
	}
}
