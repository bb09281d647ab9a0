package blob_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/authledger/authledger/blob"
)

func TestSniff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, head, want string
	}{
		{"png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", blob.TypePNG},
		{"jpeg", "\xff\xd8\xff\xe0\x00\x10JFIF", blob.TypeJPEG},
		{"tiff little-endian", "II*\x00\x08\x00\x00\x00", blob.TypeTIFF},
		{"tiff big-endian", "MM\x00*\x00\x00\x00\x08", blob.TypeTIFF},
		{"webp", "RIFF\x24\x00\x00\x00WEBPVP8 ", blob.TypeWebP},
		{"riff but wave", "RIFF\x24\x00\x00\x00WAVEfmt ", ""},
		{"pdf", "%PDF-1.7\n", blob.TypePDF},
		{"gif", "GIF89a\x01\x00", blob.TypeGIF},
		{"text", "hello, I am a .png", ""},
		{"html", "<html><body>", ""},
		{"empty", "", ""},
		{"truncated png", "\x89PN", ""},
	} {
		if got := blob.Sniff([]byte(tc.head)); got != tc.want {
			t.Errorf("%s: Sniff = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestSniffReaderKeepsEveryByte(t *testing.T) {
	t.Parallel()
	for _, content := range [][]byte{[]byte("%PDF-1.4 and a long body after the head"), []byte("%PD"), nil} {
		typ, r, err := blob.SniffReader(bytes.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		if !bytes.Equal(got, content) {
			t.Fatalf("lost bytes: %q from %q", got, content)
		}
		if (typ == blob.TypePDF) != (len(content) > 5) {
			t.Fatalf("%q sniffed as %q", content, typ)
		}
	}
}

func TestTypes(t *testing.T) {
	t.Parallel()
	def, err := blob.ParseTypes(nil)
	if err != nil {
		t.Fatal(err)
	}
	var zero blob.Types
	for _, typ := range []string{blob.TypePNG, blob.TypeJPEG, blob.TypeTIFF, blob.TypeWebP, blob.TypePDF} {
		if !def.Allows(typ) || !zero.Allows(typ) {
			t.Fatalf("default refuses %s", typ)
		}
	}
	if def.Allows(blob.TypeGIF) || def.Allows("") {
		t.Fatal("default accepts gif or unknown content")
	}
	only, err := blob.ParseTypes([]string{" PNG ", "jpg", "image/png"})
	if err != nil {
		t.Fatal(err)
	}
	if got := only.List(); len(got) != 2 || !only.Allows(blob.TypeJPEG) || only.Allows(blob.TypePDF) {
		t.Fatalf("parsed %v", got)
	}
	if _, err := blob.ParseTypes([]string{"png", "docx", "text/plain"}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("docx")) || !bytes.Contains([]byte(err.Error()), []byte("text/plain")) {
		t.Fatalf("unknown types: %v", err)
	}
}
