// Package eventstest checks a domain package's events against the registry
// rules every domain package follows.
package eventstest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/events"
)

// RoundTrip checks that register gives every one of all a name of its own
// (two types sharing a name is the ZITADEL copy-paste bug), that each name
// is versioned, and that each event encodes and decodes back to its own
// type under its own name, with every field set coming back equal (a zero
// value alone would not notice a decoder that drops or mangles a field).
func RoundTrip(t *testing.T, register func(*events.Registry) error, all []events.Event) {
	t.Helper()
	r := events.NewRegistry()
	if err := register(r); err != nil {
		t.Fatal(err)
	}
	if len(r.Names()) != len(all) {
		t.Fatalf("%d names for %d types: two types share a name", len(r.Names()), len(all))
	}
	for _, e := range all {
		name, data, err := events.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(name, ".v1") {
			t.Errorf("%s is not versioned", name)
		}
		got, err := r.Decode(name, data)
		if err != nil {
			t.Fatal(err)
		}
		if reflect.TypeOf(got) != reflect.TypeOf(e) || got.EventName() != name {
			t.Errorf("%s decodes to %T named %s", name, got, got.EventName())
		}
		full := filled(e)
		_, data, err = events.Encode(full)
		if err != nil {
			t.Fatalf("%s with every field set: %v", name, err)
		}
		got, err = r.Decode(name, data)
		if err != nil {
			t.Fatalf("%s with every field set: %v", name, err)
		}
		if !reflect.DeepEqual(got, full) {
			t.Errorf("%s with every field set:\n got %#v\nwant %#v\n(json %s)", name, got, full, data)
		}
	}
}

// filled returns a copy of e with every exported field set to a value other
// than its zero value.
func filled(e events.Event) events.Event {
	v := reflect.New(reflect.TypeOf(e)).Elem()
	fill(v, 0)
	return v.Interface().(events.Event)
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

func fill(v reflect.Value, depth int) {
	if depth > 8 {
		return
	}
	switch {
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(time.Date(2026, 11, 23, 10, 11, 12, 13000, time.UTC)))
		return
	case v.Type() == rawType:
		v.SetBytes([]byte(`{"kty":"EC","n":[1,2.5,"x"]}`))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("value ✓ <&>")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(2.5)
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), depth+1)
			if v.Index(i).CanUint() {
				v.Index(i).SetUint(uint64(i + 1))
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fill(s.Index(0), depth+1)
		fill(s.Index(1), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, x := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, depth+1)
		fill(x, depth+1)
		m.SetMapIndex(k, x)
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	}
}
