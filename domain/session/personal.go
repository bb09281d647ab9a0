package session

import "github.com/google/uuid"

// Personal data of the session events (events.Personal): where the client
// was and what it said it was, and the claims (address and name) repeated
// for the tokens. A refresh recorded before Terms existed names no user
// and stays in clear (ADR 0034).

func (e Started) PersonalData() (uuid.UUID, []string) {
	return e.UserID, []string{"ip", "user_agent", "claims"}
}
func (e Refreshed) PersonalData() (uuid.UUID, []string) {
	if e.Terms == nil {
		return uuid.Nil, nil
	}
	return e.Terms.UserID, []string{"ip", "user_agent", "claims"}
}
func (e ClaimsUpdated) PersonalData() (uuid.UUID, []string) { return e.UserID, []string{"claims"} }
func (e ReuseDetected) PersonalData() (uuid.UUID, []string) {
	return e.UserID, []string{"ip", "user_agent"}
}
