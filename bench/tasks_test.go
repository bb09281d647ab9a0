package bench

import (
	"bytes"
	"image/png"
	"testing"

	"github.com/authledger/authledger/blob"
)

// The uploaded image is about 100 KiB, decodes as a PNG, sniffs as one,
// and stays both with the chunk that makes each upload unique.
func TestBenchUploadImage(t *testing.T) {
	t.Parallel()
	img, err := NoisePNG(100 << 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("upload of %d bytes (%s)", len(img), kib(len(img)))
	if n := len(img); n < 99<<10 || n > 101<<10 {
		t.Errorf("image of %d bytes, want about 100 KiB", n)
	}
	a, b := UniquePNG(img, 1), UniquePNG(img, 2)
	if bytes.Equal(a, b) {
		t.Error("two uploads have the same bytes")
	}
	for _, p := range [][]byte{img, a, b} {
		if _, err := png.Decode(bytes.NewReader(p)); err != nil {
			t.Fatalf("not a PNG: %v", err)
		}
		if typ, _, err := blob.SniffReader(bytes.NewReader(p)); err != nil || typ != "image/png" {
			t.Fatalf("sniffed as %q (%v)", typ, err)
		}
	}
}
