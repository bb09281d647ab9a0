package user

import "github.com/google/uuid"

// Personal data of the user events (events.Personal): the event store
// seals these members under the user's data key (ADR 0034). The source
// of a failed login is the client's network: personal data too.

func (e Registered) PersonalData() (uuid.UUID, []string) {
	return e.UserID, []string{"email", "display_name"}
}
func (e DisplayNameChanged) PersonalData() (uuid.UUID, []string) {
	return e.UserID, []string{"display_name"}
}
func (e EmailVerificationRequested) PersonalData() (uuid.UUID, []string) {
	return e.UserID, []string{"email"}
}
func (e EmailVerified) PersonalData() (uuid.UUID, []string) { return e.UserID, []string{"email"} }
func (e EmailChanged) PersonalData() (uuid.UUID, []string) {
	return e.UserID, []string{"old_email", "email"}
}
func (e ExternalIdentityLinked) PersonalData() (uuid.UUID, []string) {
	return e.UserID, []string{"provider_email"}
}
func (e LoginFailed) PersonalData() (uuid.UUID, []string) { return e.UserID, []string{"source"} }
func (e LoginFailuresCleared) PersonalData() (uuid.UUID, []string) {
	return e.UserID, []string{"source"}
}

// The reservation events carry no personal data in their data (the
// stream name holds the address's HMAC), but name the user whose request
// it was: the metadata's IP and user agent are sealed under their key.
func (e EmailReserved) PersonalData() (uuid.UUID, []string) { return e.UserID, nil }
func (e EmailReleased) PersonalData() (uuid.UUID, []string) { return e.UserID, nil }
