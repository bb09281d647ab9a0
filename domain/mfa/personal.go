package mfa

import "github.com/google/uuid"

// The events that carry a user's address or phone number seal them under
// the user's data key (events.Personal, ADR 0034), so an erasure leaves
// no readable number or address of a second factor in the log.

// PersonalData implements events.Personal.
func (e CodeSent) PersonalData() (uuid.UUID, []string) {
	return e.UserID, []string{"email", "phone"}
}

// PersonalData implements events.Personal.
func (e PhoneAdded) PersonalData() (uuid.UUID, []string) { return e.UserID, []string{"phone"} }
