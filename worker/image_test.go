package worker_test

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"testing"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// textPNG renders text in black on white with the 7x13 bitmap font, scaled
// up so tesseract reads it reliably (it wants capitals around 20-40 px).
func textPNG(t testing.TB, text string) []byte {
	t.Helper()
	const scale, margin = 5, 4
	face := basicfont.Face7x13
	small := image.NewGray(image.Rect(0, 0, 7*len(text)+2*margin, 13+2*margin))
	draw.Draw(small, small.Bounds(), image.White, image.Point{}, draw.Src)
	d := font.Drawer{Dst: small, Src: image.Black, Face: face, Dot: fixed.P(margin, margin+face.Ascent)}
	d.DrawString(text)
	b := small.Bounds()
	big := image.NewGray(image.Rect(0, 0, b.Dx()*scale, b.Dy()*scale))
	for y := range big.Bounds().Dy() {
		for x := range big.Bounds().Dx() {
			big.SetGray(x, y, color.Gray{Y: small.GrayAt(x/scale, y/scale).Y})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, big); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
