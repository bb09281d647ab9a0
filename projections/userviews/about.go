package userviews

import (
	"reflect"

	"github.com/google/uuid"

	"github.com/authledger/authledger/eventstore"
)

// AboutUser returns a filter of the events about one user, for folding
// that user's read-model rows alone (timetravel.Fold, GET
// /v1/admin/users/{id}?at=): the user and session events whose decoded
// data names the user as UserID, which is every event the profile read
// models apply to a user's row (registration, roles, names, addresses,
// logins, links, verifications). Decoded through the registry, so an
// upcast event is judged by its current shape.
func AboutUser(id uuid.UUID) func(eventstore.RecordedEvent) bool {
	d := newDecoding()
	return func(ev eventstore.RecordedEvent) bool {
		if d.regErr != nil {
			return false
		}
		e, err := d.reg.Decode(ev.Type, ev.Data)
		if err != nil {
			return false
		}
		// Every user and session event is a struct with a UserID field
		// when it concerns one user; reflection spares a switch that a
		// new event type would have to join.
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return false
		}
		f := v.FieldByName("UserID")
		if !f.IsValid() {
			return false
		}
		got, ok := f.Interface().(uuid.UUID)
		return ok && got == id
	}
}
