package blob_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"slices"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/authledger/authledger/blob"
	"github.com/authledger/authledger/test/testimage"
)

func encoded(t *testing.T, enc func(io.Writer, image.Image) error, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := enc(&b, image.NewGray(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// webpLossless is the header of a lossless WebP (RIFF, VP8L chunk,
// signature, 14-bit width-1 and height-1): all its DecodeConfig reads.
// golang.org/x/image has no WebP encoder.
func webpLossless(w, h int) []byte {
	bits := uint32(w-1) | uint32(h-1)<<14
	b := []byte("RIFF\x00\x00\x00\x00WEBPVP8L\x05\x00\x00\x00\x2f\x00\x00\x00\x00\x00")
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	binary.LittleEndian.PutUint32(b[21:], bits)
	return b
}

// tiffPages is a little-endian TIFF of one IFD per size (width and length
// only, as SHORT or LONG by size), chained in order; loop makes the last
// IFD point back to the first.
func tiffPages(loop bool, sizes ...blob.Size) []byte {
	b := []byte("II*\x00\x08\x00\x00\x00")
	le := binary.LittleEndian
	for i, s := range sizes {
		off := len(b)
		b = le.AppendUint16(b, 2)
		for _, e := range []struct {
			tag uint16
			v   int
		}{{256, s.Width}, {257, s.Height}} {
			b = le.AppendUint16(b, e.tag)
			if e.v < 1<<16 {
				b = le.AppendUint16(b, 3)
				b = le.AppendUint32(b, 1)
				b = le.AppendUint16(b, uint16(e.v))
				b = le.AppendUint16(b, 0)
			} else {
				b = le.AppendUint16(b, 4)
				b = le.AppendUint32(b, 1)
				b = le.AppendUint32(b, uint32(e.v))
			}
		}
		next := uint32(off + 2 + 2*12 + 4)
		switch {
		case i == len(sizes)-1 && loop:
			next = 8
		case i == len(sizes)-1:
			next = 0
		}
		b = le.AppendUint32(b, next)
	}
	return b
}

func TestImageSizes(t *testing.T) {
	t.Parallel()
	many := make([]blob.Size, blob.MaxTIFFPages+1)
	for i := range many {
		many[i] = blob.Size{Width: 10, Height: 10}
	}
	for _, tc := range []struct {
		name    string
		content []byte
		want    []blob.Size
		err     error
	}{
		{"png", encoded(t, png.Encode, 31, 7), []blob.Size{{31, 7}}, nil},
		{"png bomb", testimage.BlankPNG(t, 30000, 30000), []blob.Size{{30000, 30000}}, nil},
		{"jpeg", encoded(t, func(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, nil) }, 640, 480), []blob.Size{{640, 480}}, nil},
		{"gif", encoded(t, func(w io.Writer, m image.Image) error { return gif.Encode(w, m, nil) }, 3, 300), []blob.Size{{3, 300}}, nil},
		{"bmp", encoded(t, bmp.Encode, 12, 34), []blob.Size{{12, 34}}, nil},
		{"tiff", encoded(t, func(w io.Writer, m image.Image) error { return tiff.Encode(w, m, nil) }, 50, 60), []blob.Size{{50, 60}}, nil},
		{"tiff, a small page then a huge one", tiffPages(false, blob.Size{Width: 100, Height: 100}, blob.Size{Width: 70000, Height: 90000}),
			[]blob.Size{{100, 100}, {70000, 90000}}, nil},
		{"tiff pages in a loop", tiffPages(true, blob.Size{Width: 1, Height: 1}, blob.Size{Width: 2, Height: 2}), nil, blob.ErrUnreadableImage},
		{"tiff of too many pages", tiffPages(false, many...), nil, blob.ErrImageTooLarge},
		{"tiff page past the end", []byte("II*\x00\xff\xff\x00\x00"), nil, blob.ErrUnreadableImage},
		{"webp", webpLossless(16000, 9), []blob.Size{{16000, 9}}, nil},
		{"png magic, then garbage", append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 100)...), nil, blob.ErrUnreadableImage},
		{"jpeg cut short", encoded(t, func(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, nil) }, 8, 8)[:6], nil, blob.ErrUnreadableImage},
	} {
		typ := blob.Sniff(tc.content)
		if !blob.HasPixels(typ) {
			t.Errorf("%s: sniffed as %q", tc.name, typ)
			continue
		}
		got, err := blob.ImageSizes(typ, bytes.NewReader(tc.content))
		if !errors.Is(err, tc.err) || (tc.err == nil && !slices.Equal(got, tc.want)) {
			t.Errorf("%s: ImageSizes = %v, %v; want %v, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
	if blob.HasPixels(blob.TypePDF) {
		t.Error("PDF is said to have pixels")
	}
}

func TestPixelLimit(t *testing.T) {
	t.Parallel()
	l := blob.PixelLimit{MaxPixels: 100_000_000, MaxSide: 20000}
	for _, tc := range []struct {
		sizes []blob.Size
		ok    bool
	}{
		{[]blob.Size{{10000, 10000}}, true},
		{[]blob.Size{{30000, 30000}}, false},
		{[]blob.Size{{20001, 10}}, false},
		{[]blob.Size{{10, 20001}}, false},
		{[]blob.Size{{20000, 5001}}, false},
		{[]blob.Size{{100, 100}, {19000, 19000}}, false},
		{[]blob.Size{{1 << 31, 1 << 31}}, false},
	} {
		err := l.Check(tc.sizes)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, blob.ErrImageTooLarge)) {
			t.Errorf("Check(%v) = %v", tc.sizes, err)
		}
	}
	if err := (blob.PixelLimit{}).Check([]blob.Size{{1 << 30, 1 << 30}}); err != nil {
		t.Errorf("the zero limit bounds: %v", err)
	}
}
