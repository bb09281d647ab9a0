package task

import "github.com/google/uuid"

// Personal data of the task events (events.Personal): the client's file
// names and the OCR text (and a failure's error text, which may quote them) belong to the task's owner; the IP of a reader
// to the reader (ADR 0034).

func (e FileAttached) PersonalData() (uuid.UUID, []string) { return e.OwnerID, []string{"name"} }
func (e Completed) PersonalData() (uuid.UUID, []string)    { return e.OwnerID, []string{"result"} }

// The error text of a failure may quote the file (its name, its text).
func (e Failed) PersonalData() (uuid.UUID, []string)       { return e.OwnerID, []string{"error"} }
func (e FileAccessed) PersonalData() (uuid.UUID, []string) { return e.UserID, []string{"ip"} }
func (e Viewed) PersonalData() (uuid.UUID, []string)       { return e.UserID, []string{"ip"} }
func (e AccessDenied) PersonalData() (uuid.UUID, []string) { return e.UserID, []string{"ip"} }
