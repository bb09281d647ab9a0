package blob

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/bmp"
	"golang.org/x/image/webp"
)

// Size is an image's pixel dimensions.
type Size struct{ Width, Height int }

// Pixels is Width × Height, computed without overflow.
func (s Size) Pixels() int64 { return int64(s.Width) * int64(s.Height) }

func (s Size) String() string { return fmt.Sprintf("%d×%d", s.Width, s.Height) }

// ErrUnreadableImage: the header of an image (of the type Sniff named)
// cannot be read, so its dimensions are unknown. Such a file is refused:
// one whose size cannot be bounded is not handed to OCR.
var ErrUnreadableImage = errors.New("blob: the image's header cannot be read")

// ErrImageTooLarge: an image's dimensions exceed a PixelLimit, or a TIFF
// has more than MaxTIFFPages pages. Every such error is an
// *ImageTooLargeError.
var ErrImageTooLarge = errors.New("blob: the image is too large")

// ImageTooLargeError says which bound an image exceeds.
type ImageTooLargeError struct {
	// Reason is fit for a client: "30000×30000 pixels, more than
	// 100000000 in all".
	Reason string
}

func (e *ImageTooLargeError) Error() string { return "blob: the image is too large: " + e.Reason }

// Is makes errors.Is(err, ErrImageTooLarge) true.
func (e *ImageTooLargeError) Is(target error) bool { return target == ErrImageTooLarge }

func tooLarge(format string, args ...any) error {
	return &ImageTooLargeError{Reason: fmt.Sprintf(format, args...)}
}

// MaxTIFFPages bounds the pages (IFDs) ImageSizes walks in a TIFF; a file
// with more is ErrImageTooLarge. OCR reads every page of a TIFF, so pages
// multiply its cost as pixels do.
const MaxTIFFPages = 1000

// HasPixels reports whether mediaType is an image whose dimensions
// ImageSizes reads. PDF has none: its pages are vector descriptions the
// OCR worker does not rasterise (see worker.PDFNotProcessed), so only the
// byte limits bound it.
func HasPixels(mediaType string) bool {
	switch mediaType {
	case TypePNG, TypeJPEG, TypeTIFF, TypeWebP, TypeGIF, TypeBMP:
		return true
	}
	return false
}

// ImageSizes reads the dimensions of an image of mediaType (as Sniff named
// it) from its header alone, never decoding pixel data, so a decompression
// bomb (a few hundred KiB of PNG declaring 30000×30000 pixels) costs no
// more than its header. It returns one Size per image OCR would read: one
// for PNG, JPEG, WebP, GIF (its logical screen) and BMP, one per page for
// a TIFF.
//
// The decoders are the standard library's (PNG, JPEG, GIF) and
// golang.org/x/image's (WebP, BMP). TIFF pages are read by walking the IFD
// chain here: golang.org/x/image/tiff reads only the first page, and
// refuses valid scans (CMYK, JPEG-compressed YCbCr) that tesseract reads.
//
// A header that cannot be read is ErrUnreadableImage; a TIFF of more than
// MaxTIFFPages pages, ErrImageTooLarge.
func ImageSizes(mediaType string, r io.ReadSeeker) ([]Size, error) {
	var decodeConfig func(io.Reader) (image.Config, error)
	switch mediaType {
	case TypePNG:
		decodeConfig = png.DecodeConfig
	case TypeJPEG:
		decodeConfig = jpeg.DecodeConfig
	case TypeGIF:
		decodeConfig = gif.DecodeConfig
	case TypeWebP:
		decodeConfig = webp.DecodeConfig
	case TypeBMP:
		decodeConfig = bmp.DecodeConfig
	case TypeTIFF:
		return tiffSizes(r)
	default:
		return nil, fmt.Errorf("blob: %q has no pixel dimensions", mediaType)
	}
	c, err := decodeConfig(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreadableImage, err)
	}
	if c.Width <= 0 || c.Height <= 0 {
		return nil, fmt.Errorf("%w: %d×%d pixels", ErrUnreadableImage, c.Width, c.Height)
	}
	return []Size{{c.Width, c.Height}}, nil
}

// TIFF (revision 6.0) tags and field types ImageSizes reads.
const (
	tiffImageWidth  = 256
	tiffImageLength = 257
	tiffShort       = 3
	tiffLong        = 4
)

// tiffSizes walks the IFD chain from the header: each IFD is a 2-byte
// entry count, 12-byte entries (tag, type, count, value or offset) and the
// 4-byte offset of the next IFD (0 ends the chain). A loop, an offset past
// the end or a page without its width or length is unreadable.
func tiffSizes(r io.ReadSeeker) ([]Size, error) {
	unreadable := func(format string, args ...any) error {
		return fmt.Errorf("%w: TIFF: %s", ErrUnreadableImage, fmt.Sprintf(format, args...))
	}
	ra := readerAt(r)
	var head [8]byte
	if _, err := ra.ReadAt(head[:], 0); err != nil {
		return nil, unreadable("header: %v", err)
	}
	var order binary.ByteOrder
	switch string(head[:4]) {
	case "II*\x00":
		order = binary.LittleEndian
	case "MM\x00*":
		order = binary.BigEndian
	default:
		return nil, unreadable("not a TIFF header")
	}
	var sizes []Size
	var entries []byte
	seen := map[uint32]bool{}
	for off := order.Uint32(head[4:]); off != 0; {
		if seen[off] {
			return nil, unreadable("the pages form a loop")
		}
		seen[off] = true
		if len(sizes) == MaxTIFFPages {
			return nil, tooLarge("a TIFF of more than %d pages", MaxTIFFPages)
		}
		var n [2]byte
		if _, err := ra.ReadAt(n[:], int64(off)); err != nil {
			return nil, unreadable("page %d: %v", len(sizes)+1, err)
		}
		// At most 65535 entries of 12 bytes: under 786 KiB, read at once
		// into one buffer for every page.
		if need := 12*int(order.Uint16(n[:])) + 4; cap(entries) < need {
			entries = make([]byte, need)
		} else {
			entries = entries[:need]
		}
		if _, err := ra.ReadAt(entries, int64(off)+2); err != nil {
			return nil, unreadable("page %d: %v", len(sizes)+1, err)
		}
		var s Size
		for e := entries[:len(entries)-4]; len(e) >= 12; e = e[12:] {
			var v int
			switch order.Uint16(e[2:]) {
			case tiffShort:
				v = int(order.Uint16(e[8:]))
			case tiffLong:
				v = int(order.Uint32(e[8:]))
			default:
				continue
			}
			switch order.Uint16(e[0:]) {
			case tiffImageWidth:
				s.Width = v
			case tiffImageLength:
				s.Height = v
			}
		}
		if s.Width <= 0 || s.Height <= 0 {
			return nil, unreadable("page %d has no width or length", len(sizes)+1)
		}
		sizes = append(sizes, s)
		off = order.Uint32(entries[len(entries)-4:])
	}
	if len(sizes) == 0 {
		return nil, unreadable("no pages")
	}
	return sizes, nil
}

// readerAt gives random access to r: its own ReadAt (an *os.File) or
// seeks and reads, which suits one caller at a time.
func readerAt(r io.ReadSeeker) io.ReaderAt {
	if ra, ok := r.(io.ReaderAt); ok {
		return ra
	}
	return seekReaderAt{r}
}

type seekReaderAt struct{ r io.ReadSeeker }

func (s seekReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if _, err := s.r.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(s.r, p)
}

// PixelLimit bounds the images OCR is given. A zero field is no bound.
type PixelLimit struct {
	// MaxPixels bounds width × height of each image (each TIFF page).
	MaxPixels int64
	// MaxSide bounds the width and the height of each image.
	MaxSide int
}

// Check returns an *ImageTooLargeError naming the first of sizes that
// exceeds the limit.
func (l PixelLimit) Check(sizes []Size) error {
	for i, s := range sizes {
		page := ""
		if len(sizes) > 1 {
			page = fmt.Sprintf(" (page %d)", i+1)
		}
		if l.MaxSide > 0 && (s.Width > l.MaxSide || s.Height > l.MaxSide) {
			return tooLarge("%s pixels%s, more than %d on a side", s, page, l.MaxSide)
		}
		if l.MaxPixels > 0 && s.Pixels() > l.MaxPixels {
			return tooLarge("%s pixels%s, more than %d in all", s, page, l.MaxPixels)
		}
	}
	return nil
}
