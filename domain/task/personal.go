package task

import "github.com/google/uuid"

// Personal data of the task events (events.Personal): the client's file
// names and the OCR text belong to the task's owner; the IP of a reader
// to the reader (ADR 0034).

func (e FileAttached) PersonalData() (uuid.UUID, []string) { return e.OwnerID, []string{"name"} }
func (e Completed) PersonalData() (uuid.UUID, []string)    { return e.OwnerID, []string{"result"} }
func (e FileAccessed) PersonalData() (uuid.UUID, []string) { return e.UserID, []string{"ip"} }
func (e Viewed) PersonalData() (uuid.UUID, []string)       { return e.UserID, []string{"ip"} }
func (e AccessDenied) PersonalData() (uuid.UUID, []string) { return e.UserID, []string{"ip"} }
