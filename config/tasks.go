package config

import (
	"time"

	"github.com/google/uuid"
)

func (t Tasks) validate(bad func(name, format string, args ...any)) {
	if t.Workers < 0 || t.Workers > 64 {
		bad("AUTHLEDGER_WORKERS", "must be between 0 and 64")
	}
	if t.MaxFileBytes < 1 {
		bad("AUTHLEDGER_UPLOAD_MAX_FILE_BYTES", "must be positive")
	}
	if t.MaxRequestBytes < t.MaxFileBytes {
		bad("AUTHLEDGER_UPLOAD_MAX_REQUEST_BYTES", "must be at least AUTHLEDGER_UPLOAD_MAX_FILE_BYTES")
	}
	if t.MaxFiles < 1 || t.MaxFiles > 1000 {
		bad("AUTHLEDGER_UPLOAD_MAX_FILES", "must be between 1 and 1000")
	}
	if len(t.Types) == 0 {
		bad("AUTHLEDGER_UPLOAD_TYPES", "must name at least one type")
	}
	if t.AccessDenialWindow < 0 || t.AccessDenialWindow > time.Hour {
		bad("AUTHLEDGER_ACCESS_DENIAL_WINDOW", "must be between 0s and 1h")
	}
	if t.MaxActiveTasks < 1 {
		bad("AUTHLEDGER_TASK_MAX_ACTIVE", "must be positive")
	}
	if t.MaxStoredBytes < t.MaxFileBytes {
		bad("AUTHLEDGER_TASK_MAX_STORED_BYTES", "must be at least AUTHLEDGER_UPLOAD_MAX_FILE_BYTES")
	}
	if t.RetentionDays < 0 {
		bad("AUTHLEDGER_RETENTION_DAYS", "must not be negative (0 keeps tasks forever)")
	}
	for id := range t.RetentionByUser {
		if _, err := uuid.Parse(id); err != nil {
			bad("AUTHLEDGER_RETENTION_DAYS_BY_USER", "%q is not a user id", id)
		}
	}
	if t.Lease < 3*time.Second {
		bad("AUTHLEDGER_WORKER_LEASE", "must be at least 3s")
	}
	if t.Tesseract == "" {
		bad("AUTHLEDGER_TESSERACT", "must not be empty")
	}
	if t.MaxImagePixels < 1 {
		bad("AUTHLEDGER_UPLOAD_MAX_IMAGE_PIXELS", "must be positive")
	}
	if t.MaxImageSide < 1 {
		bad("AUTHLEDGER_UPLOAD_MAX_IMAGE_SIDE", "must be positive")
	}
	if t.OCRTimeout < time.Second {
		bad("AUTHLEDGER_OCR_TIMEOUT", "must be at least 1s")
	}
	// tesseract needs about 100 MiB of address space before it reads an
	// image (its own code and the language data).
	if t.OCRMaxMemoryBytes != 0 && t.OCRMaxMemoryBytes < 128<<20 {
		bad("AUTHLEDGER_OCR_MAX_MEMORY_BYTES", "must be 0 (none) or at least 134217728 (128 MiB)")
	}
}
