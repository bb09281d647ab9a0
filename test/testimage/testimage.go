// Package testimage renders text as PNG images that tesseract reads, for the
// tests of the OCR worker and of the assembled service.
package testimage

import (
	"bytes"
	"image"
	"image/png"
	"testing"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// TextPNG renders text in black on white with the 7x13 bitmap font, scaled
// up four times with Catmull-Rom smoothing: tesseract misreads the blocky
// glyphs of a nearest-neighbour enlargement (N as M, 3 as 4), and reads
// the smoothed ones (checked for the texts these tests use).
func TextPNG(t testing.TB, text string) []byte {
	t.Helper()
	const scale, margin = 4, 6
	face := basicfont.Face7x13
	small := image.NewGray(image.Rect(0, 0, 7*len(text)+2*margin, 13+2*margin))
	xdraw.Draw(small, small.Bounds(), image.White, image.Point{}, xdraw.Src)
	d := font.Drawer{Dst: small, Src: image.Black, Face: face, Dot: fixed.P(margin, margin+face.Ascent)}
	d.DrawString(text)
	b := small.Bounds()
	big := image.NewGray(image.Rect(0, 0, b.Dx()*scale, b.Dy()*scale))
	xdraw.CatmullRom.Scale(big, big.Bounds(), small, b, xdraw.Src, nil)
	var buf bytes.Buffer
	if err := png.Encode(&buf, big); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
