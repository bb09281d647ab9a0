package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/config"
	"github.com/authledger/authledger/domain/rollout"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/eventstore"
)

// RolloutStatus is `authledger rollout status`, computed from the log
// alone: the rollout's settings, logins by method and outcome within a
// window, linked and unlinked users, and the users who could not log in
// since the rollout last changed (seed 000 §8.3, "verify all users can
// login").
type RolloutStatus struct {
	Mode          string                    `json:"mode"`
	Percentage    int                       `json:"percentage"`
	Allowlisted   int                       `json:"allowlisted"`
	Configured    bool                      `json:"configured"`
	ChangedAt     time.Time                 `json:"changed_at,omitzero"`
	WindowFrom    time.Time                 `json:"window_from"`
	Logins        map[string]map[string]int `json:"logins"` // method → ok | refused → count
	LinkedUsers   int                       `json:"linked_users"`
	UnlinkedUsers int                       `json:"unlinked_users"`
	// CannotLogIn are the addresses of users refused since the rollout
	// changed (or within the window before any change) who have not
	// logged in since.
	CannotLogIn []string `json:"cannot_log_in"`
}

// rolloutStatus folds the events it needs, decoded through the registry.
func rolloutStatus(ctx context.Context, cfg config.Config, window time.Duration, now time.Time) (RolloutStatus, error) {
	store, err := openEventStore(ctx, cfg)
	if err != nil {
		return RolloutStatus{}, err
	}
	defer func() { _ = store.Close() }()
	reg, err := newRegistry()
	if err != nil {
		return RolloutStatus{}, err
	}
	st := RolloutStatus{WindowFrom: now.Add(-window).UTC(), Logins: map[string]map[string]int{}}
	settings, _ := rollout.FromHistory(nil)
	var changes []rollout.Configured
	emails := map[uuid.UUID]string{}
	linked := map[uuid.UUID]bool{}
	lastFail := map[uuid.UUID]time.Time{}
	lastLogin := map[uuid.UUID]time.Time{}
	count := func(method, outcome string, at time.Time) {
		if at.Before(st.WindowFrom) {
			return
		}
		if method == "" {
			method = session.MethodPassword // recorded before failures named their method
		}
		if st.Logins[method] == nil {
			st.Logins[method] = map[string]int{}
		}
		st.Logins[method][outcome]++
	}
	filter := eventstore.Filter{EventTypes: []string{rollout.EventConfigured, user.EventRegistered, user.EventExternalIdentityLinked,
		user.EventLoginFailed, session.EventStarted}}
	var after eventstore.Position
	for {
		page, err := store.ReadAll(ctx, eventstore.ReadAllOptions{After: after, Limit: 1000, Filter: filter})
		if err != nil {
			return RolloutStatus{}, err
		}
		for _, rec := range page {
			e, err := reg.Decode(rec.Type, rec.Data)
			if err != nil {
				return RolloutStatus{}, fmt.Errorf("decode %s@%d: %w", rec.Stream, rec.Revision, err)
			}
			switch e := e.(type) {
			case rollout.Configured:
				changes = append(changes, e)
			case user.Registered:
				emails[e.UserID] = e.Email
			case user.ExternalIdentityLinked:
				linked[e.UserID] = true
			case user.LoginFailed:
				count(e.Method, "refused", e.FailedAt)
				lastFail[e.UserID] = e.FailedAt
			case session.Started:
				count(e.Method, "ok", e.StartedAt)
				lastLogin[e.UserID] = e.StartedAt
			}
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].Position
	}
	s := settings.Settings()
	for _, c := range changes {
		s.Apply(c)
	}
	st.Mode, st.Percentage, st.Allowlisted, st.Configured = s.Mode, s.Percentage, len(s.Allowlist), s.Configured
	if !s.Configured {
		st.Mode = cfg.External.Mode
	}
	since := st.WindowFrom
	if s.Configured {
		st.ChangedAt = s.At
		since = s.At
	}
	for id := range emails {
		if linked[id] {
			st.LinkedUsers++
		} else {
			st.UnlinkedUsers++
		}
		if f, ok := lastFail[id]; ok && !f.Before(since) && lastLogin[id].Before(f) {
			st.CannotLogIn = append(st.CannotLogIn, emails[id])
		}
	}
	slices.Sort(st.CannotLogIn)
	if st.CannotLogIn == nil {
		st.CannotLogIn = []string{}
	}
	return st, nil
}

func (st RolloutStatus) print(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(w, "mode %s, %d%%, %d allowlisted", st.Mode, st.Percentage, st.Allowlisted)
	if st.Configured {
		fmt.Fprintf(w, " (changed %s)\n", st.ChangedAt.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintln(w, " (never changed: AUTHLEDGER_USE_EXTERNAL_AUTH decides)")
	}
	fmt.Fprintf(w, "logins since %s:\n", st.WindowFrom.Format(time.RFC3339))
	for _, m := range slices.Sorted(func(yield func(string) bool) {
		for k := range st.Logins {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(w, "  %-9s ok %d, refused %d\n", m, st.Logins[m]["ok"], st.Logins[m]["refused"])
	}
	fmt.Fprintf(w, "users linked %d, unlinked %d\n", st.LinkedUsers, st.UnlinkedUsers)
	fmt.Fprintf(w, "could not log in since the last change: %d\n", len(st.CannotLogIn))
	for _, e := range st.CannotLogIn {
		fmt.Fprintf(w, "  %s\n", e)
	}
	return nil
}
