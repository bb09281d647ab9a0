package access_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/events/eventstest"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// catalogWith folds a roles stream holding the given creations.
func catalogWith(t *testing.T, created ...access.RoleCreated) *access.Catalog {
	t.Helper()
	var h []events.Event
	for _, c := range created {
		h = append(h, c)
	}
	c, err := access.FromHistory(h)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTableDescribesEveryPermissionOnce(t *testing.T) {
	t.Parallel()
	seen := map[access.Permission]bool{}
	for _, d := range access.Table() {
		if d.Description == "" || seen[d.Permission] {
			t.Errorf("%s: empty description or listed twice", d.Permission)
		}
		seen[d.Permission] = true
	}
	admin, _ := access.Builtin().Role(access.RoleAdmin)
	if len(admin.Permissions) != len(seen) {
		t.Errorf("admin holds %d permissions, the table has %d", len(admin.Permissions), len(seen))
	}
}

func TestBuiltinRolesExistFromTheStart(t *testing.T) {
	t.Parallel()
	c := access.Builtin()
	for _, name := range []string{access.RoleAdmin, access.RoleAuditor, access.RoleUser} {
		if r, ok := c.Role(name); !ok || !r.Builtin {
			t.Errorf("%s: %+v %v", name, r, ok)
		}
	}
	if !c.Effective([]string{access.RoleAuditor}).Has(access.AuditRead) || c.Effective([]string{access.RoleUser}).Has(access.AuditRead) {
		t.Error("auditor must read the audit trail, user must not")
	}
	for _, name := range []string{access.RoleAdmin, access.RoleUser} {
		if err := c.Change(name, access.Definition{}, t0); !errors.Is(err, access.ErrBuiltinRole) {
			t.Errorf("Change(%s) = %v", name, err)
		}
		if err := c.Delete(name, t0); !errors.Is(err, access.ErrBuiltinRole) {
			t.Errorf("Delete(%s) = %v", name, err)
		}
	}
	if len(c.Changes()) != 0 {
		t.Errorf("recorded %v", c.Changes())
	}
}

// A custom role holds its own permissions and every ancestor's; a
// deleted or unknown role counts for nothing.
func TestEffectivePermissionsFollowInheritance(t *testing.T) {
	t.Parallel()
	c := catalogWith(t,
		access.RoleCreated{Name: "reader", Permissions: []access.Permission{access.UsersRead}},
		access.RoleCreated{Name: "support", Permissions: []access.Permission{access.UsersWrite}, Parents: []string{"reader", access.RoleAuditor}},
	)
	got := c.Effective([]string{"support", "gone"})
	want := []access.Permission{access.AuditRead, access.UsersRead, access.UsersWrite, access.RolesRead}
	if !slices.Equal(got.Sorted(), sorted(want)) {
		t.Errorf("support holds %v, want %v", got.Sorted(), sorted(want))
	}
}

func sorted(ps []access.Permission) []access.Permission { return access.NewSet(ps...).Sorted() }

func TestCreateChangeDelete(t *testing.T) {
	t.Parallel()
	c := access.Builtin()
	if err := c.Create("support", access.Definition{Description: " Helps ", Permissions: []access.Permission{access.UsersRead, access.UsersRead}, Parents: []string{access.RoleUser}}, t0); err != nil {
		t.Fatal(err)
	}
	want := access.RoleCreated{Name: "support", Description: "Helps", Permissions: []access.Permission{access.UsersRead}, Parents: []string{access.RoleUser}, CreatedAt: t0}
	if ch := c.Changes(); len(ch) != 1 || !equalCreated(ch[0], want) {
		t.Fatalf("changes %+v, want %+v", ch, want)
	}
	if err := c.Create("support", access.Definition{}, t0); !errors.Is(err, access.ErrRoleExists) {
		t.Errorf("second Create = %v", err)
	}
	if err := c.Change("support", access.Definition{Description: "Helps", Permissions: []access.Permission{access.UsersRead}, Parents: []string{access.RoleUser}}, t0); err != nil || len(c.Changes()) != 1 {
		t.Errorf("the same definition: %v, %d changes", err, len(c.Changes()))
	}
	if err := c.Change("support", access.Definition{Permissions: []access.Permission{access.UsersWrite}}, t0); err != nil || len(c.Changes()) != 2 {
		t.Errorf("Change: %v, %d changes", err, len(c.Changes()))
	}
	if err := c.Delete("support", t0); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Role("support"); ok {
		t.Error("deleted role still there")
	}
	// Its grants on user streams must not come back with a new role.
	if err := c.Create("support", access.Definition{}, t0); !errors.Is(err, access.ErrRoleExists) {
		t.Errorf("Create of a deleted name = %v, want ErrRoleExists", err)
	}
	if err := c.Delete("nobody", t0); !errors.Is(err, access.ErrRoleNotFound) {
		t.Errorf("Delete(nobody) = %v", err)
	}
}

func equalCreated(e events.Event, want access.RoleCreated) bool {
	got, ok := e.(access.RoleCreated)
	return ok && got.Name == want.Name && got.Description == want.Description && slices.Equal(got.Permissions, want.Permissions) &&
		slices.Equal(got.Parents, want.Parents) && got.CreatedAt.Equal(want.CreatedAt)
}

// Inheritance is acyclic: a parent that reaches the role itself is
// refused, directly or through others, and nothing is recorded.
func TestCyclesAreRefused(t *testing.T) {
	t.Parallel()
	c := catalogWith(t,
		access.RoleCreated{Name: "a", Permissions: []access.Permission{}},
		access.RoleCreated{Name: "b", Permissions: []access.Permission{}, Parents: []string{"a"}},
		access.RoleCreated{Name: "c", Permissions: []access.Permission{}, Parents: []string{"b"}},
	)
	for _, tc := range []struct{ role, parent string }{{"a", "a"}, {"a", "b"}, {"a", "c"}, {"b", "c"}} {
		err := c.Change(tc.role, access.Definition{Parents: []string{tc.parent}}, t0)
		if !errors.Is(err, user.ErrInvalidInput) || user.FieldErrors(err)[0].Field != "parents" {
			t.Errorf("%s inherits %s: %v, want invalid parents", tc.role, tc.parent, err)
		}
	}
	if err := c.Delete("a", t0); !errors.Is(err, access.ErrRoleInUse) {
		t.Errorf("Delete of an inherited role = %v", err)
	}
	if len(c.Changes()) != 0 {
		t.Errorf("recorded %v", c.Changes())
	}
}

func TestInvalidDefinitionsListEveryField(t *testing.T) {
	t.Parallel()
	c := access.Builtin()
	err := c.Create("ops", access.Definition{Permissions: []access.Permission{"files:eat"}, Parents: []string{"ghost"}}, t0)
	fields := map[string]bool{}
	for _, fe := range user.FieldErrors(err) {
		fields[fe.Field] = true
	}
	if !fields["permissions"] || !fields["parents"] {
		t.Errorf("err %v: fields %v", err, fields)
	}
	if err := c.Create("Bad Name", access.Definition{}, t0); !errors.Is(err, user.ErrInvalidInput) {
		t.Errorf("bad name: %v", err)
	}
}

func TestEventsRoundTripUnderTheirOwnNames(t *testing.T) {
	t.Parallel()
	eventstest.RoundTrip(t, access.RegisterEvents, access.AllEvents())
}
