// Package tasks serves the Tasks and files endpoints of API.md that write:
// upload (POST /tasks), delete, retry and download (an audited command).
// The list and read endpoints are readapi's. Every command response
// carries X-Consistency-Token.
//
// Routes expect authn.Middleware to have run on the group they are
// mounted on.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/authledger/authledger/blob"
	"github.com/authledger/authledger/commands"
	"github.com/authledger/authledger/domain/access"
	"github.com/authledger/authledger/domain/task"
	"github.com/authledger/authledger/httpapi"
	"github.com/authledger/authledger/httpapi/problem"
)

// Config holds the upload limits. Zero fields take the defaults of API.md.
type Config struct {
	// MaxFileBytes limits one file; default 20 MiB.
	MaxFileBytes int64
	// MaxRequestBytes limits the whole multipart body; default 50 MiB.
	MaxRequestBytes int64
	// MaxFiles limits the files of one task; default 10.
	MaxFiles int
	// Types are the accepted content types, sniffed from the bytes; the
	// zero value accepts blob.DefaultTypes.
	Types blob.Types
	// MaxImagePixels bounds width × height of each image (each TIFF
	// page), read from its header; default 100 megapixels (an A3 page
	// scanned at 600 dpi is 70). Bytes do not bound pixels: a PNG of
	// 30000×30000 black pixels compresses to under 1 MB.
	MaxImagePixels int64
	// MaxImageSide bounds each image's width and height; default 20000.
	MaxImageSide int
}

func (c Config) withDefaults() Config {
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = 20 << 20
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 50 << 20
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = 10
	}
	if c.MaxImagePixels == 0 {
		c.MaxImagePixels = DefaultMaxImagePixels
	}
	if c.MaxImageSide == 0 {
		c.MaxImageSide = DefaultMaxImageSide
	}
	return c
}

// Defaults of Config.MaxImagePixels and Config.MaxImageSide.
const (
	DefaultMaxImagePixels = 100_000_000
	DefaultMaxImageSide   = 20000
)

// DefaultConfig is the zero Config with its defaults filled in.
func DefaultConfig() Config { return Config{}.withDefaults() }

// Validate reports every problem at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.MaxFileBytes < 1 || c.MaxRequestBytes < 1 || c.MaxFiles < 1 || c.MaxImagePixels < 1 || c.MaxImageSide < 1 {
		errs = append(errs, errors.New("httpapi/tasks: limits must be positive"))
	}
	if c.MaxFileBytes > c.MaxRequestBytes {
		errs = append(errs, fmt.Errorf("httpapi/tasks: MaxFileBytes (%d) exceeds MaxRequestBytes (%d)", c.MaxFileBytes, c.MaxRequestBytes))
	}
	return errors.Join(errs...)
}

// Deps are what the endpoints need, built by cmd/.
type Deps struct {
	Tasks *commands.TaskHandlers
	Blobs blob.Store
	// Referenced answers whether a live task uses a blob
	// (projections/taskviews.Queue.BlobReferenced): a failed upload removes
	// only the blobs no task uses. A deleted task's blobs are removed by
	// the blob-release policy (reactors/blobrelease).
	Referenced blob.Referenced
	Config     Config
	Logger     *slog.Logger
}

// Mount registers the endpoints on rg (the /v1 group, behind
// authn.Middleware).
func Mount(rg *gin.RouterGroup, d Deps) error {
	var errs []error
	if d.Tasks == nil || d.Tasks.Create == nil || d.Tasks.Delete == nil || d.Tasks.Retry == nil || d.Tasks.AccessFile == nil {
		errs = append(errs, errors.New("httpapi/tasks: Deps.Tasks needs the create, delete, retry and access-file handlers"))
	}
	if d.Blobs == nil || d.Referenced == nil {
		errs = append(errs, errors.New("httpapi/tasks: Deps needs Blobs and Referenced"))
	}
	errs = append(errs, d.Config.Validate())
	if err := errors.Join(errs...); err != nil {
		return err
	}
	d.Config = d.Config.withDefaults()
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handlers{d: d}
	// A route names what it needs on the caller's own tasks; delete and
	// download act on another's only with the :any permission (Permitted),
	// and otherwise answer as for a missing task.
	rg.POST("/tasks", httpapi.Require(access.TasksCreate), h.create)
	rg.DELETE("/tasks/:id", httpapi.Require(access.TasksWrite), h.delete)
	rg.POST("/tasks/:id/retry", httpapi.Require(access.TasksWrite), h.retry)
	rg.GET("/tasks/:id/files/:file_id", httpapi.Require(access.TasksRead), h.download)
	return nil
}

type handlers struct{ d Deps }

// caller is the authenticated requester and the metadata of the events
// its request appends.
type caller struct {
	httpapi.Principal
	meta commands.Meta
}

func who(c *gin.Context) (caller, bool) {
	p, err := httpapi.Caller(c)
	if err != nil {
		httpapi.WriteError(c, err)
		return caller{}, false
	}
	return caller{Principal: p, meta: commands.RequestMeta(httpapi.RequestID(c), c.ClientIP(), c.Request.UserAgent(), p.Actor())}, true
}

// pathID parses a path parameter; anything but a UUID (the nil one
// included) names no task or file.
func pathID(c *gin.Context, name string) (uuid.UUID, bool) {
	id, err := uuid.Parse(c.Param(name))
	if err != nil || id == uuid.Nil {
		return uuid.Nil, false
	}
	return id, true
}

// upload is the state of one POST /tasks: what it stored, so that a
// failure can undo it.
type upload struct {
	files  []task.File
	stored []blob.Info
}

func (h *handlers) create(c *gin.Context) {
	who, ok := who(c)
	if !ok {
		return
	}
	cfg := h.d.Config
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, cfg.MaxRequestBytes)
	up := &upload{}
	var res commands.TaskResult
	err := h.receive(c, up)
	if err == nil {
		res, err = h.d.Tasks.Create.Handle(c.Request.Context(), commands.CreateTask{TaskID: uuid.New(), OwnerID: who.UserID, Files: up.files, Meta: who.meta})
	}
	if err != nil {
		h.undo(c.Request.Context(), up)
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, res.Position)
	c.JSON(http.StatusAccepted, gin.H{"task_id": res.TaskID, "status": res.Status})
}

// receive streams every `files` part into the blob store, one part at a
// time: a file is never held in memory, only its first bytes (to sniff
// the type).
func (h *handlers) receive(c *gin.Context, up *upload) error {
	cfg := h.d.Config
	ctx := c.Request.Context()
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return problem.Invalid("The body must be multipart/form-data with one or more `files` parts.",
			problem.FieldError{Field: "files", Message: "required"})
	}
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return problem.Invalid("The multipart body is malformed.").WithCause(err)
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return bodyError(err)
		}
		field, rawName, err := partName(part)
		if err != nil {
			_ = part.Close()
			return err
		}
		if field != "files" {
			// Other fields are ignored; NextPart discards what is unread.
			_ = part.Close()
			continue
		}
		if len(up.files) == cfg.MaxFiles {
			_ = part.Close()
			return problem.TooLarge(fmt.Sprintf("A task holds at most %d files.", cfg.MaxFiles))
		}
		if strings.ContainsRune(rawName, 0) {
			// No file system allows a NUL in a name; one here is a
			// truncation trick ("evil.exe\x00.png"), not a typo.
			_ = part.Close()
			return problem.Invalid("A file name must not contain a NUL character.",
				problem.FieldError{Field: fmt.Sprintf("files[%d]", len(up.files)), Message: "file name contains NUL"})
		}
		name := SanitizeFileName(rawName, len(up.files)+1)
		typ, r, err := blob.SniffReader(part)
		if err != nil {
			_ = part.Close()
			return bodyError(err)
		}
		if !cfg.Types.Allows(typ) {
			_ = part.Close()
			return problem.UnsupportedType(fmt.Sprintf("%q is not an accepted type (accepted: %s); the type is read from the content, not the name.",
				name, strings.Join(cfg.Types.List(), ", ")))
		}
		info, err := h.d.Blobs.Put(ctx, r, cfg.MaxFileBytes)
		_ = part.Close()
		if errors.Is(err, blob.ErrTooLarge) {
			return problem.TooLarge(fmt.Sprintf("%q exceeds the limit of %d bytes per file.", name, cfg.MaxFileBytes))
		}
		if err != nil {
			return bodyError(err)
		}
		up.stored = append(up.stored, info)
		if err := h.checkPixels(ctx, name, typ, info.SHA256); err != nil {
			return err
		}
		up.files = append(up.files, task.File{ID: uuid.New(), Name: name, ContentType: typ, Size: info.Size, SHA256: info.SHA256})
	}
	if len(up.files) == 0 {
		return problem.Invalid("At least one file is required, in a `files` part.",
			problem.FieldError{Field: "files", Message: "required"})
	}
	return nil
}

// checkPixels bounds the dimensions of a stored image from its header
// (blob.ImageSizes), before any task refers to it: a decompression bomb is
// small in bytes and huge in pixels, and OCR would decode every pixel.
// The check reads the stored blob, not the request, because a header can
// sit anywhere in the first megabytes (JPEG metadata, TIFF pages), and the
// blob is undone with the rest of a refused upload.
func (h *handlers) checkPixels(ctx context.Context, name, typ, sha string) error {
	if !blob.HasPixels(typ) {
		return nil
	}
	rc, _, err := h.d.Blobs.Open(ctx, sha)
	if err != nil {
		return err
	}
	defer rc.Close()
	sizes, err := blob.ImageSizes(typ, rc)
	if err == nil {
		err = blob.PixelLimit{MaxPixels: h.d.Config.MaxImagePixels, MaxSide: h.d.Config.MaxImageSide}.Check(sizes)
	}
	var tooLarge *blob.ImageTooLargeError
	switch {
	case errors.As(err, &tooLarge):
		return (&problem.Error{Kind: problem.KindTooLarge, Slug: SlugImageTooLarge,
			Detail: fmt.Sprintf("%q is too large to process: %s (at most %d pixels and %d on a side).",
				name, tooLarge.Reason, h.d.Config.MaxImagePixels, h.d.Config.MaxImageSide)}).WithCause(err)
	case errors.Is(err, blob.ErrUnreadableImage):
		return problem.UnsupportedType(fmt.Sprintf("%q looks like %s but its header cannot be read.", name, typ)).WithCause(err)
	}
	return err
}

// SlugImageTooLarge is the problem type (413) of an image whose pixel
// dimensions exceed Config.MaxImagePixels or Config.MaxImageSide.
const SlugImageTooLarge = "image-too-large"

// partName reads a part's Content-Disposition (RFC 7578: every part has
// one, of type form-data): its field name and, for a file, the client's
// file name (filename*, RFC 2231, decoded). mime/multipart ignores a header
// it cannot parse and reports no name, which made such a file part vanish
// from an upload that still succeeded; here it is a 400.
func partName(part *multipart.Part) (field, fileName string, err error) {
	disp, params, perr := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	if perr != nil || disp != "form-data" || params["name"] == "" {
		return "", "", problem.Invalid("Every part needs a readable Content-Disposition: form-data header with a name.",
			problem.FieldError{Field: "files", Message: "a part's Content-Disposition cannot be read"}).WithCause(perr)
	}
	return params["name"], params["filename"], nil
}

// bodyError maps a failure while reading the request: past the request
// limit is 413; a malformed body (bad framing, a part header textproto
// refuses, such as one with a NUL or no colon) 400; the rest (a client
// gone, a disk error) stays as it is. mime/multipart's own framing errors
// have no type (they are fmt.Errorf("multipart: ...")): the package's
// prefix is the one mark they carry, so only they are matched by message.
func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	var badHeader textproto.ProtocolError
	switch {
	case errors.As(err, &tooLarge):
		return problem.TooLarge("The request exceeds the upload limit.").WithCause(err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &badHeader), strings.Contains(err.Error(), "multipart"):
		return problem.Invalid("The multipart body is malformed.").WithCause(err)
	}
	return err
}

// undo removes the blobs this request stored, unless another upload of the
// same bytes uses them (see blob.ReleaseIfUnused). It runs even when the
// client went away.
func (h *handlers) undo(ctx context.Context, up *upload) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, b := range up.stored {
		if !b.Created {
			continue
		}
		if _, err := blob.ReleaseIfUnused(ctx, h.d.Blobs, b.SHA256, b.ModTime, h.d.Referenced); err != nil {
			h.d.Logger.Warn("tasks: remove the blob of a failed upload", "sha256", b.SHA256, "err", err)
		}
	}
}

func (h *handlers) delete(c *gin.Context) {
	who, ok := who(c)
	if !ok {
		return
	}
	id, ok := pathID(c, "id")
	if !ok {
		httpapi.WriteError(c, task.ErrNotFound)
		return
	}
	res, err := h.d.Tasks.Delete.Handle(c.Request.Context(), commands.DeleteTask{TaskID: id, UserID: who.UserID, AsAdmin: httpapi.Permitted(who.Principal, access.TasksDeleteAny, uuid.Nil), Meta: who.meta})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, res.Position)
	c.Status(http.StatusNoContent)
}

func (h *handlers) retry(c *gin.Context) {
	who, ok := who(c)
	if !ok {
		return
	}
	id, ok := pathID(c, "id")
	if !ok {
		httpapi.WriteError(c, task.ErrNotFound)
		return
	}
	res, err := h.d.Tasks.Retry.Handle(c.Request.Context(), commands.RetryTask{TaskID: id, UserID: who.UserID, Meta: who.meta})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	httpapi.SetConsistencyToken(c, res.Position)
	c.JSON(http.StatusAccepted, gin.H{"task_id": res.TaskID, "status": res.Status})
}

func (h *handlers) download(c *gin.Context) {
	who, ok := who(c)
	if !ok {
		return
	}
	id, okTask := pathID(c, "id")
	fileID, okFile := pathID(c, "file_id")
	if !okTask || !okFile {
		httpapi.WriteError(c, task.ErrNotFound)
		return
	}
	ctx := c.Request.Context()
	// The access is recorded before a byte leaves (or the refusal, with
	// the same 404 as a missing file).
	res, err := h.d.Tasks.AccessFile.Handle(ctx, commands.AccessFile{UserID: who.UserID, TaskID: id, FileID: fileID, AsAdmin: httpapi.Permitted(who.Principal, access.TasksReadAny, uuid.Nil), Meta: who.meta})
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	rc, _, err := h.d.Blobs.Open(ctx, res.File.SHA256)
	if errors.Is(err, blob.ErrNotFound) {
		// Deleted between the check and the read: the file is gone.
		err = fmt.Errorf("%w: %w", task.ErrNotFound, err)
	}
	if err != nil {
		httpapi.WriteError(c, err)
		return
	}
	defer rc.Close()
	httpapi.SetConsistencyToken(c, res.Position)
	hd := c.Writer.Header()
	hd.Set("Content-Type", res.File.ContentType)
	hd.Set("Content-Disposition", ContentDisposition(res.File.Name))
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cache-Control", "private, no-store")
	// ServeContent answers Range requests; each is a recorded access.
	fw := &fileWriter{ResponseWriter: c.Writer}
	c.Writer = fw
	http.ServeContent(fw, c.Request, "", time.Time{}, rc)
}

// fileWriter gives http.ServeContent the connection's own ReadFrom, which
// hands a file to the kernel (sendfile) instead of copying it through
// 32 KiB buffers: gin's writer has no ReadFrom, which hid it. Gin still
// writes the status line and headers, and Size counts the bytes sent so.
type fileWriter struct {
	gin.ResponseWriter
	sent int64
}

// ReadFrom implements io.ReaderFrom.
func (w *fileWriter) ReadFrom(r io.Reader) (int64, error) {
	w.WriteHeaderNow()
	if u, ok := w.ResponseWriter.(interface{ Unwrap() http.ResponseWriter }); ok {
		if rf, ok := u.Unwrap().(io.ReaderFrom); ok {
			n, err := rf.ReadFrom(r)
			w.sent += n
			return n, err
		}
	}
	// Without a ReadFrom underneath, copy through gin's writer (which
	// counts the bytes itself); the struct hides this method from io.Copy.
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
}

// Size implements gin.ResponseWriter: gin's count plus what ReadFrom sent.
func (w *fileWriter) Size() int {
	return w.ResponseWriter.Size() + int(w.sent)
}

// SanitizeFileName keeps the last path element of a client's file name,
// as valid UTF-8 without control characters, at most 255 bytes; an empty
// result becomes "file-<n>".
//
// Invisible format characters (Unicode category Cf) are stripped too, the
// bidi controls above all: "evil\u202egnp.exe" displays as "evilexe.png"
// but is an .exe, and the stripped name ("evilgnp.exe") shows what it is.
// They are stripped rather than refused because the name is the client's
// label, not an identifier: nothing else in it is refused either. The
// zero-width (non-)joiners stay, since Persian, Indic and emoji names need
// them and they reorder nothing.
func SanitizeFileName(name string, n int) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = stripInvisible(name)
	name = strings.TrimSpace(name)
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" || name == "." || name == ".." {
		return fmt.Sprintf("file-%d", n)
	}
	return name
}

// stripInvisible drops control characters and every format character
// but the zero-width non-joiner and joiner.
func stripInvisible(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) && r != '\u200c' && r != '\u200d' {
			return -1
		}
		return r
	}, s)
}

// ContentDisposition is an RFC 6266 attachment header for name: an ASCII
// fallback in filename (quotes, backslashes and non-ASCII replaced) and
// the exact name in filename* (RFC 8187 UTF-8 percent-encoding), which
// current browsers prefer. Control and bidi characters are dropped as
// SanitizeFileName drops them, for names stored before it did.
func ContentDisposition(name string) string {
	name = stripInvisible(name)
	var ascii strings.Builder
	for _, r := range name {
		switch {
		case r == '"' || r == '\\' || r < 0x20 || r == 0x7f:
			ascii.WriteByte('_')
		case r > 0x7e:
			ascii.WriteByte('_')
		default:
			ascii.WriteRune(r)
		}
	}
	return `attachment; filename="` + ascii.String() + `"; filename*=UTF-8''` + encodeRFC8187(name)
}

// encodeRFC8187 percent-encodes everything but RFC 8187's attr-char.
func encodeRFC8187(s string) string {
	var b strings.Builder
	for i := range len(s) {
		ch := s[i]
		if ch < 0x80 && (ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("!#$&+-.^_`|~", ch) >= 0) {
			b.WriteByte(ch)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", ch)
	}
	return b.String()
}
