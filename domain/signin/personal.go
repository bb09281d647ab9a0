package signin

import "github.com/google/uuid"

// PersonalData (events.Personal): what the provider said about the user.
// A code for a user not created yet (UserID nil) stays in clear (ADR 0034).
func (e CodeIssued) PersonalData() (uuid.UUID, []string) {
	return e.UserID, []string{"provider_email", "display_name"}
}
