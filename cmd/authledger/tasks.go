package main

// tasks.go assembles tasks and files: the blob store under the data
// directory, the task command handlers, the upload/download routes, the
// task queries, and the worker (embedded in serve, or `authledger worker`).

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/blob"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/config"
	domaintask "github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/httpapi"
	taskshttp "github.com/authledger/authledger/httpapi/tasks"
	"github.com/authledger/authledger/projections/projector"
	"github.com/authledger/authledger/projections/taskviews"
	"github.com/authledger/authledger/reactors/blobrelease"
	"github.com/authledger/authledger/worker"
)

// blobDir is where uploaded files live, under AUTHLEDGER_DATA_DIR.
const blobDir = "blobs"

// taskCore is what the routes and the worker share.
type taskCore struct {
	handlers *commands.TaskHandlers
	blobs    *blob.Local
	queue    *taskviews.Queue
	types    blob.Types
}

func newTaskCore(cfg config.Config, store eventstore.Store, db *pgxpool.Pool) (*taskCore, error) {
	reg := events.NewRegistry()
	if err := domaintask.RegisterEvents(reg); err != nil {
		return nil, err
	}
	tc := commands.DefaultTaskConfig()
	tc.Limits = domaintask.Limits{MaxActiveTasks: cfg.Tasks.MaxActiveTasks, MaxStoredBytes: cfg.Tasks.MaxStoredBytes}
	tc.ClaimLease = cfg.Tasks.Lease
	tc.DenialWindow = cfg.Tasks.AccessDenialWindow
	h, err := commands.NewTaskHandlers(store, reg, tc)
	if err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	blobs, err := blob.NewLocal(filepath.Join(cfg.DataDir, blobDir))
	if err != nil {
		return nil, fmt.Errorf("blob store under AUTHLEDGER_DATA_DIR: %w", err)
	}
	types, err := blob.ParseTypes(cfg.Tasks.Types)
	if err != nil {
		return nil, fmt.Errorf("AUTHLEDGER_UPLOAD_TYPES: %w", err)
	}
	return &taskCore{handlers: h, blobs: blobs, queue: taskviews.NewQueue(db), types: types}, nil
}

// blobRelease is the policy that removes an ended task's files
// (reactors/blobrelease), run by the projection runner.
func (tc *taskCore) blobRelease(waiter blobrelease.Waiter, log *slog.Logger) (projector.Projection, error) {
	return blobrelease.New(blobrelease.Config{Tasks: tc.handlers.Delete.Tasks, Blobs: tc.blobs, Referenced: tc.queue.BlobReferenced,
		Waiter: waiter, Projection: taskviews.Name, Logger: log})
}

// mount registers the task commands on the authenticated /v1 group (the
// task queries are readapi's, which reaches the log through
// authorizeRead).
func (tc *taskCore) mount(v1 *gin.RouterGroup, cfg config.Config, log *slog.Logger) error {
	return taskshttp.Mount(v1, taskshttp.Deps{
		Tasks:      tc.handlers,
		Blobs:      tc.blobs,
		Referenced: tc.queue.BlobReferenced,
		Config: taskshttp.Config{
			MaxFileBytes:    cfg.Tasks.MaxFileBytes,
			MaxRequestBytes: cfg.Tasks.MaxRequestBytes,
			MaxFiles:        cfg.Tasks.MaxFiles,
			Types:           tc.types,
			MaxImagePixels:  cfg.Tasks.MaxImagePixels,
			MaxImageSide:    cfg.Tasks.MaxImageSide,
		},
		Logger: log,
	})
}

// authorizeRead is readapi's way to the log: the AuthorizeTaskRead command
// records a refused read (access.denied.v1, coalesced) or an
// administrator's read of another user's task (task.viewed.v1).
func (tc *taskCore) authorizeRead(c *gin.Context, taskID uuid.UUID, asAdmin bool) error {
	p, err := httpapi.Caller(c)
	if err != nil {
		return err
	}
	meta := commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), p.Actor())
	_, err = tc.handlers.AuthorizeRead.Handle(c.Request.Context(), commands.AuthorizeTaskRead{UserID: p.UserID, TaskID: taskID, AsAdmin: asAdmin, Meta: meta})
	return err
}

// newWorker builds a worker with concurrency n on the tasks read model.
// waiter may come from the local projection runner (serve) or poll the
// checkpoints alone (`authledger worker`).
func (tc *taskCore) newWorker(ctx context.Context, cfg config.Config, n int, store eventstore.Store, waiter worker.Waiter, log *slog.Logger) (*worker.Worker, error) {
	memory := cfg.Tasks.OCRMaxMemoryBytes
	if memory == 0 {
		memory = -1 // none; the processor's zero would be its default
	}
	ocr, err := worker.NewTesseract(ctx, worker.TesseractConfig{Binary: cfg.Tasks.Tesseract, Languages: cfg.Tasks.OCRLanguages,
		FileTimeout: cfg.Tasks.OCRTimeout, MaxMemoryBytes: memory})
	if err != nil {
		return nil, fmt.Errorf("OCR processor (AUTHLEDGER_TESSERACT; Debian: apt-get install tesseract-ocr): %w", err)
	}
	cmds, err := worker.NewCommands(tc.handlers)
	if err != nil {
		return nil, err
	}
	wc := worker.Config{
		Concurrency:   n,
		Lease:         cfg.Tasks.Lease,
		Heartbeat:     cfg.Tasks.Lease / 3,
		RetentionDays: cfg.Tasks.RetentionDays,
	}
	if cfg.Tasks.RetentionDays == 0 {
		wc.RetentionDays = -1 // keep forever
	}
	for id, days := range cfg.Tasks.RetentionByUser {
		if wc.RetentionByUser == nil {
			wc.RetentionByUser = map[uuid.UUID]int{}
		}
		if days == 0 {
			days = -1
		}
		wc.RetentionByUser[uuid.MustParse(id)] = days // validated by config
	}
	return worker.New(wc, worker.Deps{
		Tasks:      cmds,
		ReadModel:  tc.queue,
		Blobs:      tc.blobs,
		Processor:  ocr,
		Log:        store,
		Waiter:     waiter,
		Projection: taskviews.Name,
		Logger:     log.With(slog.String("component", "worker")),
	})
}
