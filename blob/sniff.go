package blob

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// SniffLen is how many leading bytes Sniff needs at most.
const SniffLen = 16

// Media types Sniff recognises.
const (
	TypePNG  = "image/png"
	TypeJPEG = "image/jpeg"
	TypeTIFF = "image/tiff"
	TypeWebP = "image/webp"
	TypeGIF  = "image/gif"
	TypeBMP  = "image/bmp"
	TypePDF  = "application/pdf"
)

// DefaultTypes are the media types accepted when nothing is configured
// (API.md: images and PDF).
var DefaultTypes = []string{TypePNG, TypeJPEG, TypeTIFF, TypeWebP, TypePDF}

var magics = []struct {
	typ    string
	match  func([]byte) bool
	suffix string
}{
	{TypePNG, prefix("\x89PNG\r\n\x1a\n"), "png"},
	{TypeJPEG, prefix("\xff\xd8\xff"), "jpeg"},
	{TypeTIFF, func(b []byte) bool { return prefix("II*\x00")(b) || prefix("MM\x00*")(b) }, "tiff"},
	{TypeWebP, func(b []byte) bool { return len(b) >= 12 && string(b[0:4]) == "RIFF" && string(b[8:12]) == "WEBP" }, "webp"},
	{TypeGIF, func(b []byte) bool { return prefix("GIF87a")(b) || prefix("GIF89a")(b) }, "gif"},
	{TypeBMP, prefix("BM"), "bmp"},
	{TypePDF, prefix("%PDF-"), "pdf"},
}

func prefix(p string) func([]byte) bool {
	return func(b []byte) bool { return bytes.HasPrefix(b, []byte(p)) }
}

// Sniff names the media type of content from its first bytes (magic
// numbers), never from a file name or a client's Content-Type, which a
// client controls. It returns "" for anything it does not recognise.
func Sniff(head []byte) string {
	for _, m := range magics {
		if m.match(head) {
			return m.typ
		}
	}
	return ""
}

// SniffReader reads the first bytes of r, sniffs them, and returns a
// reader that yields all of r again (nothing is lost or buffered beyond
// SniffLen bytes).
func SniffReader(r io.Reader) (string, io.Reader, error) {
	head := make([]byte, SniffLen)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", nil, err
	}
	head = head[:n]
	return Sniff(head), io.MultiReader(bytes.NewReader(head), r), nil
}

// Types is a set of accepted media types.
type Types struct{ list []string }

// ParseTypes accepts media types ("image/png") or their short names
// ("png", "jpg", "tif"); empty means DefaultTypes. A type Sniff cannot
// recognise is an error, since it could never match.
func ParseTypes(names []string) (Types, error) {
	if len(names) == 0 {
		return Types{list: slices.Clone(DefaultTypes)}, nil
	}
	var errs []error
	var out []string
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		switch n {
		case "jpg":
			n = "jpeg"
		case "tif":
			n = "tiff"
		}
		found := ""
		for _, m := range magics {
			if n == m.typ || n == m.suffix {
				found = m.typ
			}
		}
		if found == "" {
			errs = append(errs, fmt.Errorf("blob: unknown content type %q (known: png, jpeg, tiff, webp, gif, bmp, pdf)", n))
			continue
		}
		if !slices.Contains(out, found) {
			out = append(out, found)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Types{}, err
	}
	return Types{list: out}, nil
}

// Allows reports whether the media type is accepted. The zero Types
// allows DefaultTypes.
func (t Types) Allows(mediaType string) bool {
	if mediaType == "" {
		return false
	}
	if t.list == nil {
		return slices.Contains(DefaultTypes, mediaType)
	}
	return slices.Contains(t.list, mediaType)
}

// List returns the accepted media types.
func (t Types) List() []string {
	if t.list == nil {
		return slices.Clone(DefaultTypes)
	}
	return slices.Clone(t.list)
}
