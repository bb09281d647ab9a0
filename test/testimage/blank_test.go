package testimage_test

import (
	"bytes"
	"image"
	"image/png"
	"testing"

	"github.com/authledger/authledger/test/testimage"
)

func TestBlankPNGDecodes(t *testing.T) {
	t.Parallel()
	// 1100 rows of 1001 bytes cross a one-MiB block boundary.
	m, err := png.Decode(bytes.NewReader(testimage.BlankPNG(t, 1000, 1100)))
	if err != nil {
		t.Fatal(err)
	}
	g, ok := m.(*image.Gray)
	if !ok || g.Bounds() != image.Rect(0, 0, 1000, 1100) {
		t.Fatalf("decoded %T %v", m, m.Bounds())
	}
	for _, p := range g.Pix {
		if p != 0 {
			t.Fatal("a pixel is not black")
		}
	}
	bomb := testimage.BlankPNG(t, 30000, 30000)
	c, err := png.DecodeConfig(bytes.NewReader(bomb))
	if err != nil || c.Width != 30000 || c.Height != 30000 || len(bomb) > 1<<20 {
		t.Fatalf("30000×30000: %d bytes, %+v, %v", len(bomb), c, err)
	}
}
