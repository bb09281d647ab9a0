package token_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/token"
)

func TestDeviceToken(t *testing.T) {
	t.Parallel()
	sid := uuid.New()
	d, err := token.NewDeviceToken(sid)
	if err != nil {
		t.Fatal(err)
	}
	wire := d.Encode()
	back, err := token.ParseDeviceToken(wire)
	if err != nil || back.SessionID() != sid || !back.Matches(d.Digest()) {
		t.Fatalf("round trip: %v %v", back, err)
	}
	other, _ := token.NewDeviceToken(sid)
	if other.Matches(d.Digest()) {
		t.Fatal("two draws share a digest")
	}
	for _, shown := range []string{d.String(), fmt.Sprintf("%v %+v %#v", d, d, d)} {
		if strings.Contains(shown, wire[len(wire)-43:]) {
			t.Fatalf("secret shown: %s", shown)
		}
	}
	// A refresh token is not a device token, nor the other way round.
	rt, _ := token.NewRefreshToken(sid)
	if _, err := token.ParseDeviceToken(rt.Encode()); !errors.Is(err, token.ErrInvalidDeviceToken) {
		t.Fatalf("refresh token parsed as a device token: %v", err)
	}
	if _, err := token.ParseRefreshToken(wire); err == nil {
		t.Fatal("device token parsed as a refresh token")
	}
	for _, bad := range []string{"", "dev_", "dev_" + sid.String(), wire + "x", strings.ToUpper(wire)} {
		if _, err := token.ParseDeviceToken(bad); !errors.Is(err, token.ErrInvalidDeviceToken) {
			t.Errorf("ParseDeviceToken(%q) = %v", bad, err)
		}
	}
}
