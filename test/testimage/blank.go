package testimage

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// BlankPNG is a real, valid PNG of width × height black 8-bit grey pixels,
// built without holding the pixels: its zlib stream repeats the deflate
// encoding of one MiB of zeros (each encoded from an empty window, so the
// copies can follow one another), which is how a decompression bomb
// declares 30000×30000 pixels (900 MB) in under 1 MB. Any PNG decoder
// decodes it (image/png does, for small sizes, in this package's tests).
func BlankPNG(t testing.TB, width, height int) []byte {
	t.Helper()
	if width <= 0 || height <= 0 || width > 1<<31-1 || height > 1<<31-1 {
		t.Fatalf("BlankPNG: %d×%d", width, height)
	}
	// Each row is a filter byte (0, none) and width zero pixels.
	raw := int64(height) * int64(width+1)
	const block = 1 << 20
	zlib := bytes.NewBuffer([]byte{0x78, 0xda}) // deflate, 32 KiB window, best compression
	full := deflateZeros(t, block)
	for range raw / block {
		zlib.Write(full)
	}
	if rest := int(raw % block); rest > 0 {
		zlib.Write(deflateZeros(t, rest))
	}
	zlib.Write([]byte{0x03, 0x00}) // the final block: fixed Huffman, end of block only
	// Adler-32 of raw zeros: A stays 1, B adds A once per byte.
	binary.Write(zlib, binary.BigEndian, uint32(raw%65521)<<16|1) //nolint:errcheck // a bytes.Buffer does not fail

	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(width))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(height))
	ihdr[8] = 8 // bit depth; colour type 0 (grey), deflate, adaptive filtering, no interlace
	pngChunk(&out, "IHDR", ihdr)
	pngChunk(&out, "IDAT", zlib.Bytes())
	pngChunk(&out, "IEND", nil)
	return out.Bytes()
}

// deflateZeros is n zero bytes deflated from an empty window and ended by
// a sync flush (byte-aligned, not final), so encodings can be concatenated.
func deflateZeros(t testing.TB, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func pngChunk(out *bytes.Buffer, typ string, data []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	out.Write(n[:])
	out.WriteString(typ)
	out.Write(data)
	binary.BigEndian.PutUint32(n[:], crc32.Update(crc32.ChecksumIEEE([]byte(typ)), crc32.IEEETable, data))
	out.Write(n[:])
}
