package identity_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
)

const pw = "correct horse battery"

func (c client) tryRegister(email string) (int, map[string]any) {
	c.t.Helper()
	r, body := c.do("POST", "/v1/auth/register", "", map[string]string{"email": email, "password": pw, "display_name": "Someone"})
	return r.StatusCode, body
}

// login answers the user id the tokens are for, or "" when refused.
func (c client) loginAs(email string) string {
	c.t.Helper()
	r, body := c.do("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": pw})
	u, _ := body["user"].(map[string]any)
	if r.StatusCode != http.StatusOK || u == nil {
		return ""
	}
	id, _ := u["id"].(string)
	return id
}

func problemType(body map[string]any) string {
	s, _ := body["type"].(string)
	return s
}

// Addresses a person cannot tell apart are one account: a look-alike of a
// registered address answers 409 email-taken, a local part mixing scripts
// 400, and both spellings of an internationalised domain are one address.
func TestLookAlikeAddressesAreOneAccount(t *testing.T) {
	t.Parallel()
	c := newServer(t)
	if status, body := c.tryRegister("alice@example.com"); status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, body)
	}
	for _, email := range []string{
		"ａｌｉｃｅ@example.com", // fullwidth
		"𝐚𝐥𝐢𝐜𝐞@example.com", // mathematical bold
		"ALICE＠ＥＸＡＭＰＬＥ．ＣＯＭ", // fullwidth @ and dots
	} {
		if status, body := c.tryRegister(email); status != http.StatusConflict || problemType(body) != "https://authledger.dev/problems/email-taken" {
			t.Errorf("register %q: %d %v", email, status, body)
		}
	}
	for _, email := range []string{
		"\u0430lice@example.com",                     // Cyrillic а, then Latin
		"alic\u0435@example.com",                     // Cyrillic е at the end
		"\u0430\u04cf\u0456\u0441\u0435@example.com", // all Cyrillic, all Latin look-alikes
		"\u03b1lice@example.com",                     // Greek alpha
	} {
		status, body := c.tryRegister(email)
		errs, _ := body["errors"].([]any)
		var first map[string]any
		if len(errs) == 1 {
			first, _ = errs[0].(map[string]any)
		}
		if status != http.StatusBadRequest || problemType(body) != "https://authledger.dev/problems/invalid-input" || first["field"] != "email" {
			t.Errorf("register %q: %d %v", email, status, body)
		}
	}
	// A Cyrillic letter in the domain makes another domain, which the
	// account shows as what it is: an xn-- label.
	if status, body := c.tryRegister("alice@ex\u0430mple.com"); status != http.StatusCreated {
		t.Errorf("register a look-alike domain: %d %v", status, body)
	}

	if status, body := c.tryRegister("x@bücher.example"); status != http.StatusCreated {
		t.Fatalf("register an IDN address: %d %v", status, body)
	}
	if status, body := c.tryRegister("x@xn--bcher-kva.example"); status != http.StatusConflict {
		t.Errorf("the ASCII spelling of a registered IDN address: %d %v", status, body)
	}
	id := c.loginAs("x@bücher.example")
	if id == "" || c.loginAs("X@XN--BCHER-KVA.EXAMPLE") != id || c.loginAs("x@bu\u0308cher.example") != id {
		t.Errorf("the spellings of one address log in to different accounts, or none")
	}
	if c.loginAs("ａｌｉｃｅ@example.com") != c.loginAs("alice@example.com") || c.loginAs("alice@example.com") == "" {
		t.Errorf("a fullwidth spelling does not log in to its account")
	}
}

// Accounts registered before NFKC and IDNA keep their logins: their
// reservations are keyed by the HMAC of the form they had then (a Unicode
// domain as typed, a local part now refused), and are still found by
// every spelling that reached them before and by the other spelling of
// their domain; an address they hold cannot be registered again.
func TestAccountsRegisteredUnderTheOldNormalFormStillLogIn(t *testing.T) {
	t.Parallel()
	c, st := newServerAndStack(t)
	ctx := context.Background()
	// What the previous version wrote for a registration: the reservation
	// under the HMAC of its normal form, then the user stream.
	oldRegistration := func(normalised string) string {
		t.Helper()
		m := hmac.New(sha256.New, st.Register.ReservationKey)
		m.Write([]byte(normalised))
		stream := user.EmailReservationStreamPrefix + hex.EncodeToString(m.Sum(nil))
		id := uuid.New()
		if _, err := st.Reservation.Update(ctx, stream, commands.Meta{}, func(r *user.EmailReservation) error { return r.Reserve(id, time.Now()) }); err != nil {
			t.Fatal(err)
		}
		hash, err := st.Register.Hasher.Hash(ctx, pw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Users.Append(ctx, user.StreamName(id), 0, commands.Meta{}, []events.Event{user.Registered{
			UserID: id, Email: normalised, DisplayName: "Old", PasswordHash: hash, Roles: []string{user.DefaultRole}, RegisteredAt: time.Now().UTC(),
		}}); err != nil {
			t.Fatal(err)
		}
		return id.String()
	}
	idn := oldRegistration("old@münchen.example")
	mixed := oldRegistration("b\u043eb@example.com") // Cyrillic о: accepted then, refused now
	fullwidth := oldRegistration("ａlice@example.com")
	// Both spellings of one IDN address, registered as two accounts before:
	// each keeps its own spelling's login.
	dupUnicode, dupASCII := oldRegistration("dup@bücher.example"), oldRegistration("dup@xn--bcher-kva.example")

	for email, want := range map[string]string{
		"old@münchen.example":        idn,
		"OLD@MÜNCHEN.EXAMPLE":        idn,
		"old@xn--mnchen-3ya.example": idn, // the ASCII spelling finds the old Unicode one
		"b\u043eb@example.com":       mixed,
		"ａlice@example.com":          fullwidth,
		"dup@bücher.example":         dupUnicode,
		"dup@xn--bcher-kva.example":  dupASCII,
	} {
		if got := c.loginAs(email); got != want {
			t.Errorf("login %q: user %q, want %q", email, got, want)
		}
	}
	for _, email := range []string{"old@münchen.example", "old@xn--mnchen-3ya.example"} {
		if status, body := c.tryRegister(email); status != http.StatusConflict {
			t.Errorf("register %q held by an old account: %d %v", email, status, body)
		}
	}
	// The plain address the old fullwidth account looks like was never
	// registered: it is free, and both accounts keep their own logins.
	if status, body := c.tryRegister("alice@example.com"); status != http.StatusCreated {
		t.Fatalf("register alice: %d %v", status, body)
	}
	if a := c.loginAs("alice@example.com"); a == "" || a == fullwidth || c.loginAs("ａlice@example.com") != fullwidth {
		t.Errorf("alice and the old fullwidth account: %q %q", a, c.loginAs("ａlice@example.com"))
	}
}
