package events

import "github.com/google/uuid"

// Personal is implemented by an event whose data holds personal data of
// one user (an address, a name, an IP address, a user agent, a file name,
// OCR text). The event store seals the named members under that user's
// data key before they reach the log (eventstore/sealed), and readers get
// them back in clear until the user is erased, then as JSON null (the Go
// zero value). ADR 0034 says how a new event type opts in: implement
// this, naming top-level JSON members of the event's data.
//
// Subject uuid.Nil (a user not known yet) leaves the event in clear; the
// metadata's client IP and user agent are sealed under the subject, or,
// without one, under the acting user.
type Personal interface {
	Event
	// PersonalData returns the user whose key seals the members and the
	// JSON names of the members. It reads only the receiver.
	PersonalData() (subject uuid.UUID, members []string)
}
