package session_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
)

func TestRevokeBefore(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	c, err := session.CutoffsFromHistory(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeBefore(now.Add(time.Second), uuid.Nil, "", "", now); !errors.Is(err, user.ErrInvalidInput) {
		t.Errorf("a cutoff in the future: %v", err)
	}
	if err := c.RevokeBefore(now, uuid.New(), "auditor", "", now); !errors.Is(err, user.ErrInvalidInput) {
		t.Errorf("a user and a role: %v", err)
	}
	// Rounded up to the second: auth_time is in whole seconds.
	if err := c.RevokeBefore(now.Add(-700*time.Millisecond), uuid.Nil, "", "incident", now); err != nil {
		t.Fatal(err)
	}
	cut := c.Changes()[0].(session.RevokedBefore)
	if !cut.Before.Equal(now) || cut.Reason != "incident" {
		t.Errorf("cutoff %+v", cut)
	}
}

func TestCutoffApplies(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	me, other := uuid.New(), uuid.New()
	cases := []struct {
		name    string
		cut     session.RevokedBefore
		roles   []string
		started time.Time
		want    bool
	}{
		{"everyone, before", session.RevokedBefore{Before: at}, nil, at.Add(-time.Second), true},
		{"everyone, at", session.RevokedBefore{Before: at}, nil, at, false},
		{"this user", session.RevokedBefore{Before: at, UserID: me}, nil, at.Add(-time.Hour), true},
		{"another user", session.RevokedBefore{Before: at, UserID: other}, nil, at.Add(-time.Hour), false},
		{"a role held", session.RevokedBefore{Before: at, Role: "auditor"}, []string{"user", "auditor"}, at.Add(-time.Hour), true},
		{"a role not held", session.RevokedBefore{Before: at, Role: "auditor"}, []string{"user"}, at.Add(-time.Hour), false},
	}
	for _, tc := range cases {
		if got := tc.cut.Applies(me, tc.roles, tc.started); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
