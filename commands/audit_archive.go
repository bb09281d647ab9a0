package commands

import (
	"context"

	"github.com/authledger/authledger/domain/auditarchive"
	"github.com/authledger/authledger/eventstore"
)

// RecordAuditArchive records that audit rows were archived to a file
// (audit retention). The audit trail projection deletes the rows when it
// applies the event.
type RecordAuditArchive struct {
	Archived auditarchive.Archived
	Meta     Meta
}

// RecordAuditArchiveHandler appends to the audit-archive stream at its
// expected revision: two instances archiving at once cannot both record
// the same rows (the second gets auditarchive.ErrOutOfOrder on retry).
type RecordAuditArchiveHandler struct {
	Archives *Repository[*auditarchive.Archive]
}

// Handle records the archiving and returns the log position written.
func (h *RecordAuditArchiveHandler) Handle(ctx context.Context, cmd RecordAuditArchive) (eventstore.Position, error) {
	res, err := h.Archives.Update(ctx, auditarchive.StreamName, cmd.Meta, func(a *auditarchive.Archive) error {
		return a.Record(cmd.Archived)
	})
	if err != nil {
		return eventstore.Position{}, err
	}
	return res.Position, nil
}
