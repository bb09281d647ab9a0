package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/rollout"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore/pg"
	"github.com/authledger/authledger/test/extauthserver"
	"github.com/authledger/authledger/test/pgtest"
)

// grantAdmin gives a user the admin role through the log.
func grantAdmin(t *testing.T, db string, id uuid.UUID) {
	t.Helper()
	changeRoles(t, db, id, []string{user.RoleAdmin}, nil)
}

// changeRoles grants and revokes roles of a user directly in the log.
func changeRoles(t *testing.T, db string, id uuid.UUID, grant, revoke []string) {
	t.Helper()
	store, err := pg.Open(t.Context(), pg.Config{ConnString: db})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	reg, err := newRegistry()
	if err != nil {
		t.Fatal(err)
	}
	users, err := commands.NewRepository(store, reg, user.FromHistory)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := users.Update(t.Context(), user.StreamName(id), commands.Meta{}, func(u *user.User) error {
		for _, r := range grant {
			if err := u.GrantRole(r, time.Now()); err != nil {
				return err
			}
		}
		for _, r := range revoke {
			if err := u.RevokeRole(r, time.Now()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// The staged rollout on two instances of one deployment: a change made
// through one is applied by the other within a second or so; an
// allowlisted address goes to the provider; with a percentage, each
// address (known or not) takes the path its bucket says, every time;
// mode off is the rollback, and local passwords work throughout.
func TestStagedRolloutOnTwoInstances(t *testing.T) {
	t.Parallel()
	vip := extauthserver.User{ID: "ext-vip", Email: "vip@example.com", Name: "Vip", Password: "vip at the provider"}
	pat := extauthserver.User{ID: "ext-pat", Email: "pat@example.com", Name: "Pat", Password: "pat at the provider"}
	p := extauthserver.Start(t, extauthserver.Config{Plain: true, Users: []extauthserver.User{vip, pat}})
	db := pgtest.NewDatabase(t)
	env := externalEnv(t, p, db, map[string]string{"AUTHLEDGER_USE_EXTERNAL_AUTH": "staged", "AUTHLEDGER_EXTERNAL_AUTH_PROVISION": "true"})
	a := startService(t, env)
	b := startService(t, env)

	register := func(email, password string) uuid.UUID {
		t.Helper()
		status, _, body := a.call("POST", "/v1/auth/register", "", map[string]string{"email": email, "password": password, "display_name": "X"})
		if status != http.StatusCreated {
			t.Fatalf("register %s: %d %v", email, status, body)
		}
		return uuid.MustParse(body["user_id"].(string))
	}
	adminID := register("admin@example.com", "the admin's local password")
	register("pat@example.com", "pat's local password")
	grantAdmin(t, db, adminID)
	// Staged with nothing recorded routes nobody: the admin logs in locally.
	adm := a.externalLogin("admin@example.com", "the admin's local password")
	if adm.status != http.StatusOK {
		t.Fatalf("admin login: %d %v", adm.status, adm.body)
	}
	// The grant reaches b's access follower within milliseconds, not at
	// once: the projections' short writing transactions (one more with
	// the outbox) hold its read of the log back until they commit.
	waitStatus(t, b, "GET", "/v1/admin/rollout", adm.access, http.StatusOK)
	status, _, ro := b.call("GET", "/v1/admin/rollout", adm.access, nil)
	if status != http.StatusOK || ro["configured"] != false || ro["mode"] != "staged" || ro["external_auth"] != "staged" {
		t.Fatalf("rollout before any change: %d %v", status, ro)
	}
	hits := p.Hits(extauthserver.Login)
	if l := b.externalLogin("pat@example.com", "pat's local password"); l.status != http.StatusOK || p.Hits(extauthserver.Login) != hits {
		t.Fatalf("local login before the rollout: %d, provider asked %d times", l.status, p.Hits(extauthserver.Login)-hits)
	}
	pat0 := p.Hits(extauthserver.Login)

	// Only an admin changes it.
	someone := a.externalLogin("pat@example.com", "pat's local password")
	if status, _, body := a.call("PUT", "/v1/admin/rollout", someone.access, map[string]any{"mode": "on"}); status != http.StatusForbidden {
		t.Fatalf("PUT by a non-admin: %d %v", status, body)
	}
	if status, _, body := a.call("PUT", "/v1/admin/rollout", adm.access, map[string]any{"percentage": 101}); status != http.StatusBadRequest {
		t.Fatalf("PUT with 101%%: %d %v", status, body)
	}
	if p.Hits(extauthserver.Login) != pat0 {
		t.Fatal("a local login asked the provider")
	}

	// Allowlist the vip through A; B routes the vip to the provider soon.
	status, hdr, ro := a.call("PUT", "/v1/admin/rollout", adm.access, map[string]any{"allow_add": []string{"VIP@example.com"}})
	if status != http.StatusOK || ro["configured"] != true || ro["mode"] != "staged" || fmt.Sprint(ro["allowlist"]) != "[vip@example.com]" || hdr.Get("X-Consistency-Token") == "" {
		t.Fatalf("allowlisting: %d %v", status, ro)
	}
	changed := time.Now()
	waitSettings(t, b, adm.access, func(ro map[string]any) bool { return ro["configured"] == true })
	for {
		before := p.Hits(extauthserver.Login)
		l := b.externalLogin("vip@example.com", vip.Password)
		if l.status == http.StatusOK && p.Hits(extauthserver.Login) == before+1 {
			t.Logf("instance B applied the change after %s", time.Since(changed).Round(time.Millisecond))
			// The admin view shows the link the login made.
			status, _, prof := a.call("GET", "/v1/admin/users/"+l.userID.String(), adm.access, nil, "X-Consistency-Token", l.header.Get("X-Consistency-Token"))
			if status != http.StatusOK || prof["external_user_id"] != vip.ID || prof["provider_email"] != vip.Email || prof["display_name"] != vip.Name {
				t.Errorf("admin view of the vip: %d %v", status, prof)
			}
			if status, _, body := a.call("GET", "/v1/admin/users/"+l.userID.String(), someone.access, nil); status != http.StatusForbidden {
				t.Errorf("admin view by a non-admin: %d %v", status, body)
			}
			if status, _, body := a.call("GET", "/v1/admin/users/not-a-user", adm.access, nil); status != http.StatusNotFound {
				t.Errorf("admin view of a junk id: %d %v", status, body)
			}
			break
		}
		if time.Since(changed) > 10*time.Second {
			t.Fatalf("instance B does not route the allowlisted address to the provider after 10 s: %d %v", l.status, l.body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Half of the addresses: each takes its bucket's path, every time, on
	// either instance, whether an account has it or not.
	if status, _, body := b.call("PUT", "/v1/admin/rollout", adm.access, map[string]any{"percentage": 50}); status != http.StatusOK {
		t.Fatalf("50%%: %d %v", status, body)
	}
	waitSettings(t, a, adm.access, func(ro map[string]any) bool { return ro["percentage"] == float64(50) })
	mk, err := keys.ParseMasterKey(testMasterKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := mk.DeriveKey(reservationKeyPurpose)
	if err != nil {
		t.Fatal(err)
	}
	external, local := 0, 0
	for i := range 20 {
		email := fmt.Sprintf("person%d@example.com", i)
		want := rollout.Bucket(key, email) < 50
		for _, inst := range []*running{a, b} {
			before := p.Hits(extauthserver.Login)
			if l := inst.externalLogin(email, "not anyone's password"); l.status != http.StatusUnauthorized {
				t.Fatalf("%s: %d %v", email, l.status, l.body)
			}
			if got := p.Hits(extauthserver.Login) == before+1; got != want {
				t.Errorf("%s (bucket %d) went to the provider: %v, want %v", email, rollout.Bucket(key, email), got, want)
			}
		}
		if want {
			external++
		} else {
			local++
		}
	}
	if external == 0 || local == 0 {
		t.Errorf("20 addresses at 50%%: %d external, %d local", external, local)
	}

	// Rollback: mode off through B; A keeps every login local, and a local
	// password works.
	if status, _, body := b.call("PUT", "/v1/admin/rollout", adm.access, map[string]any{"mode": "off"}); status != http.StatusOK {
		t.Fatalf("off: %d %v", status, body)
	}
	waitSettings(t, a, adm.access, func(ro map[string]any) bool { return ro["mode"] == "off" })
	before := p.Hits(extauthserver.Login)
	if l := a.externalLogin("pat@example.com", "pat's local password"); l.status != http.StatusOK {
		t.Fatalf("local login after the rollback: %d %v", l.status, l.body)
	}
	if l := a.externalLogin("vip@example.com", vip.Password); l.status != http.StatusUnauthorized {
		t.Fatalf("a provider password after the rollback: %d %v", l.status, l.body)
	}
	if p.Hits(extauthserver.Login) != before {
		t.Error("logins asked the provider with the rollout off")
	}

	// The operator's command does the same as the endpoint.
	if code, out, errOut := runCmd(t, env, "rollout", "set", "-mode", "on"); code != exitOK || !strings.Contains(out, "mode on") {
		t.Fatalf("rollout set: %d %q %q", code, out, errOut)
	}
	waitSettings(t, b, adm.access, func(ro map[string]any) bool { return ro["mode"] == "on" })
	if l := b.externalLogin("vip@example.com", vip.Password); l.status != http.StatusOK {
		t.Fatalf("external login after rollout set -mode on: %d %v", l.status, l.body)
	}
}

// waitSettings polls GET /v1/admin/rollout on r until ok holds.
func waitSettings(t *testing.T, r *running, access string, ok func(map[string]any) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, ro := r.call("GET", "/v1/admin/rollout", access, nil)
		if ok(ro) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the instance does not apply the change: %v", ro)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// `authledger rollout status` from the log: logins by method and outcome,
// linked and unlinked users, and who could not log in since the change.
func TestRolloutStatus(t *testing.T) {
	t.Parallel()
	vip := extauthserver.User{ID: "ext-vip", Email: "vip@example.com", Name: "Vip", Password: "vip at the provider"}
	p := extauthserver.Start(t, extauthserver.Config{Plain: true, Users: []extauthserver.User{vip}})
	env := externalEnv(t, p, pgtest.NewDatabase(t), map[string]string{"AUTHLEDGER_USE_EXTERNAL_AUTH": "staged", "AUTHLEDGER_EXTERNAL_AUTH_PROVISION": "true"})
	r := startService(t, env)
	for _, e := range []string{"pat@example.com", "quinn@example.com"} {
		if status, _, body := r.call("POST", "/v1/auth/register", "", map[string]string{"email": e, "password": "a local password", "display_name": "X"}); status != http.StatusCreated {
			t.Fatalf("register: %d %v", status, body)
		}
	}
	// Quinn is allowlisted but unknown to the provider: refused there.
	if code, out, errOut := runCmd(t, env, "rollout", "set", "-allow", "vip@example.com,quinn@example.com"); code != exitOK {
		t.Fatalf("rollout set: %d %s %s", code, out, errOut)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.externalLogin("vip@example.com", vip.Password).status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the allowlist was never applied")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range []struct {
		email, password string
		want            int
	}{
		{"pat@example.com", "not pat's password", http.StatusUnauthorized},
		{"pat@example.com", "a local password", http.StatusOK},
		{"quinn@example.com", "a local password", http.StatusUnauthorized},
	} {
		if l := r.externalLogin(c.email, c.password); l.status != c.want {
			t.Fatalf("%s: %d %v", c.email, l.status, l.body)
		}
	}
	// The provider's refusal is recorded off the response path.
	deadline = time.Now().Add(10 * time.Second)
	for {
		code, out, errOut := runCmd(t, env, "rollout", "status", "-window", "1h", "-json")
		if code != exitOK {
			t.Fatalf("status: %d %s %s", code, out, errOut)
		}
		var st RolloutStatus
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatal(err)
		}
		if len(st.CannotLogIn) > 0 || time.Now().After(deadline) {
			if st.Mode != "staged" || st.Allowlisted != 2 || !st.Configured || st.LinkedUsers != 1 || st.UnlinkedUsers != 2 ||
				st.Logins["external"]["ok"] < 1 || st.Logins["external"]["refused"] != 1 || st.Logins["password"]["ok"] != 1 ||
				st.Logins["password"]["refused"] != 1 || fmt.Sprint(st.CannotLogIn) != "[quinn@example.com]" {
				t.Fatalf("status:\n%s", out)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, out, _ := runCmd(t, env, "rollout", "status"); code != exitOK || !strings.Contains(out, "could not log in since the last change: 1") {
		t.Errorf("text status: %d\n%s", code, out)
	}
}
