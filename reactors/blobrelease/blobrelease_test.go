package blobrelease_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/blob"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/projtest"
	"github.com/authledger/authledger/projections/taskviews"
	"github.com/authledger/authledger/reactors/blobrelease"
)

// An expired task's own file goes; a file another live task shares stays;
// a deleted task's files go once no live task uses them.
func TestEndedTasksReleaseTheirUnsharedBlobs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pe := projtest.New(t)
	reg := events.NewRegistry()
	if err := task.RegisterEvents(reg); err != nil {
		t.Fatal(err)
	}
	h, err := commands.NewTaskHandlers(pe.Store, reg, commands.DefaultTaskConfig())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	blobs, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	queue := taskviews.NewQueue(pe.Pool)
	policy, err := blobrelease.New(blobrelease.Config{Tasks: h.Delete.Tasks, Blobs: blobs, Referenced: queue.BlobReferenced,
		Waiter: projector.NewWaiter(pe.Pool, nil, 0), Projection: taskviews.Name})
	if err != nil {
		t.Fatal(err)
	}
	pe.Run(t, taskviews.New(), policy)

	past := time.Now().AddDate(0, 0, -40)
	create := func(at time.Time, contents ...string) (uuid.UUID, []string) {
		t.Helper()
		id := uuid.New()
		var fs []task.File
		var sums []string
		for i, c := range contents {
			b := []byte("\x89PNG\r\n\x1a\n" + c)
			info, err := blobs.Put(ctx, bytes.NewReader(b), 0)
			if err != nil {
				t.Fatal(err)
			}
			// The file is as old as its task (Put just now refreshed it).
			path := filepath.Join(dir, "sha256", info.SHA256[0:2], info.SHA256[2:4], info.SHA256)
			if err := os.Chtimes(path, at, at); err != nil {
				t.Fatal(err)
			}
			fs = append(fs, task.File{ID: uuid.New(), Name: string(rune('a'+i)) + ".png", ContentType: blob.TypePNG, Size: info.Size, SHA256: info.SHA256})
			sums = append(sums, info.SHA256)
		}
		h.Create.Now = func() time.Time { return at }
		defer func() { h.Create.Now = nil }()
		if _, err := h.Create.Handle(ctx, commands.CreateTask{TaskID: id, OwnerID: uuid.New(), Files: fs}); err != nil {
			t.Fatal(err)
		}
		return id, sums
	}
	old, oldSums := create(past, "old only", "shared")
	live, _ := create(time.Now(), "shared")
	deleted, deletedSums := create(time.Now(), "deleted only")
	stored := func(sum string) bool {
		_, _, err := blobs.Open(ctx, sum)
		if err != nil && !errors.Is(err, blob.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}

	if _, err := h.Expire.Handle(ctx, commands.ExpireTask{TaskID: old, CreatedBefore: time.Now().AddDate(0, 0, -30)}); err != nil {
		t.Fatal(err)
	}
	var owner uuid.UUID
	if tk, err := h.Delete.Tasks.Load(ctx, task.StreamName(deleted)); err == nil {
		owner = tk.Owner()
	}
	if _, err := h.Delete.Handle(ctx, commands.DeleteTask{TaskID: deleted, UserID: owner}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); stored(oldSums[0]) || stored(deletedSums[0]); {
		if time.Now().After(deadline) {
			t.Fatalf("expired task's own blob stored %v, deleted task's blob stored %v", stored(oldSums[0]), stored(deletedSums[0]))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !stored(oldSums[1]) {
		t.Fatalf("the blob live task %s shares was removed with the expired task", live)
	}
}
