package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/config"
)

func TestImageAndOCRLimits(t *testing.T) {
	t.Parallel()
	c, err := config.Load(lookup(map[string]string{"DATABASE_URL": "postgres://db/a"}))
	if err != nil {
		t.Fatal(err)
	}
	if tk := c.Tasks; tk.MaxImagePixels != 100_000_000 || tk.MaxImageSide != 20000 || tk.OCRTimeout != 2*time.Minute || tk.OCRMaxMemoryBytes != 2<<30 {
		t.Fatalf("defaults %+v", tk)
	}
	c, err = config.Load(lookup(map[string]string{"DATABASE_URL": "postgres://db/a", "AUTHLEDGER_OCR_MAX_MEMORY_BYTES": "0"}))
	if err != nil || c.Tasks.OCRMaxMemoryBytes != 0 {
		t.Fatalf("no memory limit: %+v %v", c.Tasks, err)
	}
	_, err = config.Load(lookup(map[string]string{
		"DATABASE_URL":                       "postgres://db/a",
		"AUTHLEDGER_UPLOAD_MAX_IMAGE_PIXELS": "0",
		"AUTHLEDGER_UPLOAD_MAX_IMAGE_SIDE":   "-1",
		"AUTHLEDGER_OCR_TIMEOUT":             "10ms",
		"AUTHLEDGER_OCR_MAX_MEMORY_BYTES":    "1000",
	}))
	for _, name := range []string{"AUTHLEDGER_UPLOAD_MAX_IMAGE_PIXELS", "AUTHLEDGER_UPLOAD_MAX_IMAGE_SIDE", "AUTHLEDGER_OCR_TIMEOUT", "AUTHLEDGER_OCR_MAX_MEMORY_BYTES"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
