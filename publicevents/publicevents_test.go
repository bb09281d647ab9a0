package publicevents_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/publicevents"
	"github.com/authledger/authledger/publicevents/publiceventstest"
	"github.com/authledger/authledger/test/repo"
)

const schemaBase = "https://authledger.dev/events/"

func registry(t *testing.T) *events.Registry {
	t.Helper()
	r := events.NewRegistry()
	if err := publicevents.RegisterEvents(r); err != nil {
		t.Fatal(err)
	}
	return r
}

// Every internal event is either published or listed as internal-only,
// never both, and the internal-only list names no event nobody registers.
func TestEveryInternalEventIsPublishedOrListedInternal(t *testing.T) {
	t.Parallel()
	names := registry(t).Names()
	for _, n := range names {
		_, internal := publicevents.InternalOnly[n]
		switch pub := publicevents.IsPublished(n); {
		case pub && internal:
			t.Errorf("%s is both published and listed as internal-only", n)
		case !pub && !internal:
			t.Errorf("%s is neither published nor listed in publicevents.InternalOnly: decide whether consumers get it (docs/adr/0030)", n)
		}
	}
	for n := range publicevents.InternalOnly {
		if !slices.Contains(names, n) {
			t.Errorf("InternalOnly lists %s, which no domain package registers", n)
		}
	}
	for _, n := range publicevents.Published() {
		if !slices.Contains(names, n) {
			t.Errorf("%s is published but no domain package registers it", n)
		}
	}
}

// Every domain package that registers events is in publicevents'
// registry, so that the test above sees its events.
func TestEveryDomainPackageWithEventsIsWalked(t *testing.T) {
	t.Parallel()
	root := repo.Root(t)
	src, err := os.ReadFile(filepath.Join(root, "publicevents", "publicevents.go"))
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := os.ReadDir(filepath.Join(root, "domain"))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(root, "domain", d.Name(), "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte("\nfunc RegisterEvents(")) {
				found++
				if !bytes.Contains(src, []byte(d.Name()+".RegisterEvents")) {
					t.Errorf("domain/%s registers events, but publicevents.RegisterEvents does not call %s.RegisterEvents", d.Name(), d.Name())
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("found no domain package registering events: the walk is broken")
	}
}

// compileSchemas compiles docs/events/*.json, keyed by public type.
func compileSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	dir := filepath.Join(repo.Root(t), "docs", "events")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.DefaultDraft(jsonschema.Draft2020)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := c.AddResource(schemaBase+filepath.Base(f), doc); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if name == "envelope" {
			continue
		}
		s, err := c.Compile(schemaBase + filepath.Base(f))
		if err != nil {
			t.Fatalf("compile %s: %v", f, err)
		}
		out[name] = s
	}
	return out
}

// Every published type has its schema and its row in
// docs/events/README.md, and every schema there is of a published type.
func TestEveryPublishedTypeHasASchema(t *testing.T) {
	t.Parallel()
	schemas := compileSchemas(t)
	readme, err := os.ReadFile(filepath.Join(repo.Root(t), "docs", "events", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range publicevents.Published() {
		typ := publicevents.Type(n)
		if schemas[typ] == nil {
			t.Errorf("%s has no schema docs/events/%s.json", typ, typ)
		}
		if !bytes.Contains(readme, []byte("`"+typ+"`")) {
			t.Errorf("docs/events/README.md does not list %s", typ)
		}
	}
	for typ := range schemas {
		if _, ok := publicevents.InternalName(typ); !ok {
			t.Errorf("docs/events/%s.json describes a type that is not published", typ)
		}
	}
	for n := range publicevents.InternalOnly {
		if !bytes.Contains(readme, []byte("`"+n+"`")) {
			t.Errorf("docs/events/README.md does not list the internal-only %s", n)
		}
	}
}

// The events real commands write, mapped as the publisher maps them,
// cover every published type, hold the CloudEvents attributes the spec
// requires (and the ones we promise), validate against their schemas and
// carry none of the personal data or secrets they were made with.
func TestRealEventsValidateAgainstTheirSchemas(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pe := projtest.New(t)
	personal := publiceventstest.Produce(t, ctx, pe.Store, pe.Pool)
	schemas := compileSchemas(t)
	m, err := publicevents.NewMapper("https://id.example.test")
	if err != nil {
		t.Fatal(err)
	}
	evs, err := pe.Store.ReadAll(ctx, eventstore.ReadAllOptions{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	argon := regexp.MustCompile(`\$argon2id\$`)
	for _, ev := range evs {
		out, ok, err := m.Map(ev)
		if err != nil {
			t.Fatal(err)
		}
		if ok != publicevents.IsPublished(ev.Type) {
			t.Fatalf("%s: mapped %v, published %v", ev.Type, ok, publicevents.IsPublished(ev.Type))
		}
		if !ok {
			continue
		}
		b, err := out.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var attrs map[string]any
		if err := json.Unmarshal(b, &attrs); err != nil {
			t.Fatal(err)
		}
		// CloudEvents 1.0 requires id, source, specversion and type; we
		// promise time, subject and the data's content type too.
		for _, a := range []string{"id", "source", "specversion", "type", "time", "subject", "datacontenttype", "data"} {
			if attrs[a] == nil || attrs[a] == "" {
				t.Errorf("%s: attribute %s missing in %s", ev.Type, a, b)
			}
		}
		if attrs["id"] != ev.ID.String() || attrs["specversion"] != "1.0" || attrs["type"] != "authledger."+ev.Type {
			t.Errorf("%s: id %v, specversion %v, type %v", ev.Type, attrs["id"], attrs["specversion"], attrs["type"])
		}
		s := schemas[out.Type()]
		if s == nil {
			t.Fatalf("no schema for %s", out.Type())
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(inst); err != nil {
			t.Errorf("%s does not validate against its schema: %v\n%s", out.Type(), err, b)
		}
		for _, secret := range personal.Strings() {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s carries %q: %s", out.Type(), secret, b)
			}
		}
		if argon.Match(b) || bytes.Contains(b, []byte("digest")) || bytes.Contains(b, []byte("fingerprint")) {
			t.Errorf("%s carries a hash or a digest: %s", out.Type(), b)
		}
		seen[ev.Type]++
	}
	for _, n := range publicevents.Published() {
		if seen[n] == 0 {
			t.Errorf("no real command produced %s: the schema test does not cover it", n)
		}
	}
}

// A schema refuses what it must: a field added to the data (an internal
// field leaking out), a missing required attribute, a wrong type.
func TestSchemasRefuseLeaksAndMissingAttributes(t *testing.T) {
	t.Parallel()
	s := compileSchemas(t)["authledger.session.started.v1"]
	valid := `{"specversion":"1.0","id":"0e2b7c1e-4d0a-4c4e-8f0e-2a7f1d1c9b11","source":"https://id.example.test","type":"authledger.session.started.v1",
		"time":"2026-01-02T03:04:05Z","subject":"9b1c4d5e-6f70-4182-9384-a5b6c7d8e9f0","datacontenttype":"application/json",
		"data":{"session_id":"9b1c4d5e-6f70-4182-9384-a5b6c7d8e9f0","user_id":"0e2b7c1e-4d0a-4c4e-8f0e-2a7f1d1c9b12","method":"password","amr":["pwd"],
		"started_at":"2026-01-02T03:04:05Z","expires_at":"2026-02-01T03:04:05Z"}}`
	for name, doc := range map[string]string{
		"valid":            valid,
		"leaked field":     strings.Replace(valid, `"amr":["pwd"]`, `"amr":["pwd"],"refresh_digest":"abc"`, 1),
		"no id":            strings.Replace(valid, `"id":"0e2b7c1e-4d0a-4c4e-8f0e-2a7f1d1c9b11",`, "", 1),
		"other type":       strings.Replace(valid, `"type":"authledger.session.started.v1"`, `"type":"authledger.session.revoked.v1"`, 1),
		"time not a time":  strings.Replace(valid, `"time":"2026-01-02T03:04:05Z"`, `"time":"yesterday"`, 1),
		"extra attribute":  strings.Replace(valid, `"specversion":"1.0",`, `"specversion":"1.0","ip":"203.0.113.7",`, 1),
		"user id not uuid": strings.Replace(valid, `"user_id":"0e2b7c1e-4d0a-4c4e-8f0e-2a7f1d1c9b12"`, `"user_id":"ada@example.com"`, 1),
	} {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		err = s.Validate(inst)
		if (name == "valid") != (err == nil) {
			t.Errorf("%s: validation error %v", name, err)
		}
	}
}
