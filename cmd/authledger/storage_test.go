package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/bench"
	"github.com/authledger/authledger/test/pgtest"
	"github.com/authledger/authledger/test/smallfs"
)

// With the data directory on a 4 MiB file system, uploads that find it
// full answer 507 storage-full and leave nothing behind; every accepted
// file downloads intact; uploads work again once deletes free space.
func TestUploadsToAFullDiskAnswer507(t *testing.T) {
	t.Parallel()
	smallfs.Run(t, 4<<20, func(dir string) {
		r := startService(t, map[string]string{"DATABASE_URL": pgtest.NewDatabase(t), "AUTHLEDGER_DATA_DIR": dir,
			"AUTHLEDGER_WORKERS": "0", "AUTHLEDGER_RATE_LIMIT_PER_SECOND": "0"})
		r.waitReady(30 * time.Second)
		defer func() {
			if t.Failed() {
				t.Log(r.logs.String())
			}
		}()
		access := r.login("full@example.com")
		// About 0.9 MiB that does not compress, made unique per upload
		// (blobs are content-addressed).
		noise, err := bench.NoisePNG(900 << 10)
		if err != nil {
			t.Fatal(err)
		}
		n := uint64(0)
		next := func() []byte { n++; return bench.UniquePNG(noise, n) }

		accepted := map[string][]byte{} // task id -> content
		tokens := map[string]string{}   // task id -> its consistency token
		var full map[string]any
		var fullHdr http.Header
		for i := 0; full == nil; i++ {
			if i == 10 {
				t.Fatalf("ten 0.9 MiB uploads fitted on a 4 MiB file system")
			}
			content := next()
			status, hdr, body := r.upload(access, "noise.png", content)
			switch status {
			case http.StatusAccepted:
				accepted[body["task_id"].(string)] = content
				tokens[body["task_id"].(string)] = hdr.Get("X-Consistency-Token")
			case http.StatusInsufficientStorage:
				full, fullHdr = body, hdr
			default:
				t.Fatalf("upload %d: %d %v", i, status, body)
			}
		}
		if typ, _ := full["type"].(string); !strings.HasSuffix(typ, "/storage-full") || fullHdr.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("full disk: %v (%s), want problem type storage-full", full, fullHdr.Get("Content-Type"))
		}
		if len(accepted) == 0 {
			t.Fatal("no upload was accepted before the disk filled")
		}
		// Nothing half-written: no temporary file is left.
		if tmp, err := os.ReadDir(filepath.Join(dir, blobDir, "tmp")); err != nil || len(tmp) != 0 {
			t.Fatalf("temporary files left after the refused upload: %v %v", tmp, err)
		}
		var victim string
		for id, content := range accepted {
			victim = id
			status, _, task := r.call("GET", "/v1/tasks/"+id, access, nil, "X-Consistency-Token", tokens[id])
			if status != http.StatusOK {
				t.Fatalf("task %s: %d %v", id, status, task)
			}
			fileID := task["files"].([]any)[0].(map[string]any)["file_id"].(string)
			req, _ := http.NewRequest(http.MethodGet, r.base+"/v1/tasks/"+id+"/files/"+fileID, nil)
			req.Header.Set("Authorization", "Bearer "+access)
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Equal(got, content) {
				t.Fatalf("download of accepted task %s: %d, %d bytes, intact %v", id, resp.StatusCode, len(got), bytes.Equal(got, content))
			}
		}
		if status, _, body := r.call("DELETE", "/v1/tasks/"+victim, access, nil); status != http.StatusNoContent {
			t.Fatalf("delete: %d %v", status, body)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			status, _, body := r.upload(access, "noise.png", next())
			if status == http.StatusAccepted {
				break
			}
			if status != http.StatusInsufficientStorage || time.Now().After(deadline) {
				t.Fatalf("upload after a delete freed space: %d %v", status, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}
