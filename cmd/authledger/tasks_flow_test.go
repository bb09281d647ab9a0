package main

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/testimage"
)

// TestMain lets a test start this binary as `authledger <args>` in its own
// process: with AUTHLEDGER_TEST_MAIN=1 the test binary runs main instead
// of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("AUTHLEDGER_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// login registers a user and returns an access token.
func (r *running) login(email string) string {
	r.t.Helper()
	access, _ := r.loginAs(email)
	return access
}

// upload posts one file as a new task.
func (r *running) upload(access, name string, content []byte) (int, http.Header, map[string]any) {
	r.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("files", name)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := fw.Write(content); err != nil {
		r.t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		r.t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, r.base+"/v1/tasks", &body)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+access)
	return r.send(req)
}

// ocrFlow uploads a generated image and waits for the worker to complete
// the task with the text tesseract read.
func ocrFlow(t *testing.T, r *running, email string) {
	t.Helper()
	access := r.login(email)
	status, hdr, created := r.upload(access, "scan.png", testimage.TextPNG(t, "INVOICE 1234"))
	if status != http.StatusAccepted || created["status"] != "queued" {
		t.Fatalf("upload: %d %v", status, created)
	}
	id := created["task_id"].(string)
	if status, _, got := r.call("GET", "/v1/tasks/"+id, access, nil, "X-Consistency-Token", hdr.Get("X-Consistency-Token")); status != http.StatusOK || got["status"] == nil {
		t.Fatalf("task right after upload: %d %v", status, got)
	}
	// A text file behind an image name is refused by content.
	if status, _, body := r.upload(access, "fake.png", []byte("just text, not an image")); status != http.StatusUnsupportedMediaType {
		t.Fatalf("text behind .png: %d %v", status, body)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		status, _, got := r.call("GET", "/v1/tasks/"+id, access, nil)
		if status != http.StatusOK {
			t.Fatalf("get task: %d %v", status, got)
		}
		switch got["status"] {
		case "completed":
			if res, _ := got["result"].(string); !strings.Contains(res, "INVOICE") || !strings.Contains(res, "1234") {
				t.Fatalf("OCR result %q lacks the text of the image", res)
			}
			return
		case "failed":
			t.Fatalf("task failed: %v", got)
		}
		if time.Now().After(deadline) {
			t.Fatalf("task still %v", got["status"])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The worker embedded in serve (AUTHLEDGER_WORKERS, default 1) processes a
// task uploaded through the API: queued → processing → completed.
func TestOCRTaskWithTheEmbeddedWorker(t *testing.T) {
	t.Parallel()
	r := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"})
	ocrFlow(t, r, "ocr@example.com")
}

// `authledger worker` as its own process, beside a serve that runs no
// worker, sharing the database and the data directory.
func TestOCRTaskWithASeparateWorkerProcess(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL":        pgtest.NewDatabase(t),
		"AUTHLEDGER_DATA_DIR": t.TempDir(),
		"AUTHLEDGER_WORKERS":  "0",
	}
	r := startService(t, env)

	cmd := exec.Command(os.Args[0], "worker")
	cmd.Env = append(os.Environ(), "AUTHLEDGER_TEST_MAIN=1", "AUTHLEDGER_LOG_FORMAT=text")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("worker process: %v\n%s", err, out.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("worker process did not stop on SIGTERM:\n%s", out.String())
		}
	})
	ocrFlow(t, r, "ocr-separate@example.com")
	if !strings.Contains(out.String(), "worker running") {
		t.Errorf("the separate worker did not run:\n%s", out.String())
	}
}
