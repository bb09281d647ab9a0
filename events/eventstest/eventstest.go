// Package eventstest checks a domain package's events against the registry
// rules every domain package follows.
package eventstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/authledger/authledger/events"
)

// RoundTrip checks that register gives every one of all a name of its own
// (two types sharing a name is the ZITADEL copy-paste bug), that each name
// is versioned (".v1", ".v2", ...; a version after the first needs an
// upcaster from the one before, since the log keeps every old event), and
// that each event encodes and decodes back to its own type under its own
// name, with every field set coming back equal (a zero value alone would
// not notice a decoder that drops or mangles a field).
func RoundTrip(t *testing.T, register func(*events.Registry) error, all []events.Event) {
	t.Helper()
	for _, p := range Problems(register, all) {
		t.Error(p)
	}
}

// version matches a versioned event name and captures its stem and number.
var version = regexp.MustCompile(`^(.+)\.v([1-9][0-9]*)$`)

// Problems is RoundTrip's findings, one line each.
func Problems(register func(*events.Registry) error, all []events.Event) []string {
	r := events.NewRegistry()
	if err := register(r); err != nil {
		return []string{err.Error()}
	}
	var out []string
	if len(r.Names()) != len(all) {
		out = append(out, fmt.Sprintf("%d names for %d types: two types share a name", len(r.Names()), len(all)))
	}
	for _, e := range all {
		name, data, err := events.Encode(e)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		if m := version.FindStringSubmatch(name); m == nil {
			out = append(out, fmt.Sprintf("%s is not versioned (.v1, .v2, ...)", name))
		} else if n, _ := strconv.Atoi(m[2]); n > 1 {
			prev := fmt.Sprintf("%s.v%d", m[1], n-1)
			if _, err := r.Decode(prev, data); errors.As(err, new(events.ErrUnknownEvent)) {
				out = append(out, fmt.Sprintf("%s has no upcaster from %s: the log's %s events cannot be read", name, prev, prev))
			}
		}
		got, err := r.Decode(name, data)
		if err != nil {
			out = append(out, err.Error())
			continue
		}
		if reflect.TypeOf(got) != reflect.TypeOf(e) || got.EventName() != name {
			out = append(out, fmt.Sprintf("%s decodes to %T named %s", name, got, got.EventName()))
		}
		full := filled(e)
		_, data, err = events.Encode(full)
		if err != nil {
			out = append(out, fmt.Sprintf("%s with every field set: %v", name, err))
			continue
		}
		got, err = r.Decode(name, data)
		if err != nil {
			out = append(out, fmt.Sprintf("%s with every field set: %v", name, err))
			continue
		}
		if !reflect.DeepEqual(got, full) {
			out = append(out, fmt.Sprintf("%s with every field set:\n got %#v\nwant %#v\n(json %s)", name, got, full, data))
		}
	}
	return out
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
