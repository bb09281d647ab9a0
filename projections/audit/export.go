package audit

// export.go is the signed export file of audit rows (`authledger audit
// export`, and the archives of audit retention), and its offline check
// (`authledger audit verify FILE`).

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// The export file format, JSON lines:
//
//	line 1      the header: ExportHeader
//	line 2..n+1 one row each: Canonical(row) with two members added before
//	            its closing brace, ,"hash":"<the keyed link, hex>","link":"<hex>"
//	line n+2    the trailer: {"signature":"<compact JWS of ExportSeal>"}
//
// link is the file's own chain, in plain SHA-256 so that anyone can
// recompute it without the chain key:
//
//	link(0) = SHA-256(header line bytes)
//	link(i) = SHA-256(link(i-1) || hash(row i) || Canonical(row i))
//
// and the trailer signs the last link, the count and the header's digest
// with Ed25519 (JWS "EdDSA"), the public key embedded as the JWS "jwk"
// header: the file is checkable offline, and a reader pins the key by its
// RFC 7638 thumbprint (printed by export, stable under one master key).
// A changed byte anywhere breaks a row's canonical form, a link or the
// signature, and VerifyExport names the first line where that happens.
// The file's names are a format: add, never rename.
const (
	ExportFormat = "authledger-audit-export v1"
	// ExportType is the JWS "typ" of an export's seal.
	ExportType = "authledger-audit-export+jws"
)

// ExportHeader is an export file's first line.
type ExportHeader struct {
	Format string `json:"format"`
	// From and To are the range asked for (recorded_at, From inclusive, To
	// exclusive); zero when not bounded.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// PrevSeq and PrevHash are the row before the first exported one and
	// its keyed link (zeros before the first row of the trail): the
	// anchor the rows chain from.
	PrevSeq    int64     `json:"prev_seq"`
	PrevHash   string    `json:"prev_hash"`
	ExportedAt time.Time `json:"exported_at"`
}

// ExportSeal is the signed payload of an export's trailer.
type ExportSeal struct {
	Format       string `json:"format"`
	HeaderSHA256 string `json:"header_sha256"`
	Count        int64  `json:"count"`
	FirstSeq     int64  `json:"first_seq"`
	LastSeq      int64  `json:"last_seq"`
	PrevHash     string `json:"prev_hash"`
	LastHash     string `json:"last_hash"`
	LastLink     string `json:"last_link"`
	// LastEventID and LastPosition name the last row's event (empty when
	// the file holds no row).
	LastEventID  string    `json:"last_event_id,omitempty"`
	LastPosition string    `json:"last_position,omitempty"`
	SignedAt     time.Time `json:"signed_at"`
}

// ExportSigner signs export files with an Ed25519 key.
type ExportSigner struct {
	priv  ed25519.PrivateKey
	pub   jwk.Key
	thumb string
}

// NewExportSigner returns the signer whose key is derived from seed (32
// bytes; cmd/ derives it from the master key, so that every export of one
// installation carries the same public key).
func NewExportSigner(seed []byte) (*ExportSigner, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit: the export signing seed must be %d bytes", ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub, err := jwk.Import(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("audit: export key: %w", err)
	}
	thumb, err := thumbprint(pub)
	if err != nil {
		return nil, err
	}
	if err := pub.Set(jwk.KeyIDKey, thumb); err != nil {
		return nil, fmt.Errorf("audit: export key: %w", err)
	}
	return &ExportSigner{priv: priv, pub: pub, thumb: thumb}, nil
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint (base64url) of the
// signer's public key: what an auditor pins.
func (s *ExportSigner) Thumbprint() string { return s.thumb }

func thumbprint(k jwk.Key) (string, error) {
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("audit: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// ExportWriter writes one export file: the header at once, a row per Row,
// the signed trailer at Close.
type ExportWriter struct {
	w      *bufio.Writer
	signer *ExportSigner
	seal   ExportSeal
	link   []byte
	next   int64
}

// NewExportWriter writes h (Format and a zero PrevHash filled in) to w.
func NewExportWriter(w io.Writer, h ExportHeader, s *ExportSigner) (*ExportWriter, error) {
	h.Format = ExportFormat
	if h.PrevHash == "" {
		h.PrevHash = hex.EncodeToString(make([]byte, sha256.Size))
	}
	h.From, h.To, h.ExportedAt = h.From.UTC(), h.To.UTC(), h.ExportedAt.UTC()
	line, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("audit: export header: %w", err)
	}
	sum := sha256.Sum256(line)
	ew := &ExportWriter{w: bufio.NewWriter(w), signer: s, link: sum[:], next: h.PrevSeq + 1,
		seal: ExportSeal{Format: ExportFormat, HeaderSHA256: hex.EncodeToString(sum[:]), PrevHash: h.PrevHash, LastHash: h.PrevHash}}
	ew.line(line)
	return ew, nil
}

// line writes one line. A bufio.Writer keeps its first error and returns
// it from every later call, Flush included: Close reports it.
func (ew *ExportWriter) line(b []byte) {
	_, _ = ew.w.Write(b)
	_ = ew.w.WriteByte('\n')
}

// Row writes r, which must be the next row of the chain (seq PrevSeq+1,
// then one more each).
func (ew *ExportWriter) Row(r Row) error {
	if r.Seq != ew.next {
		return fmt.Errorf("audit: export: row %d out of order (want %d)", r.Seq, ew.next)
	}
	ew.next++
	ew.link = fileLink(ew.link, r)
	ew.line(rowLine(r, ew.link))
	if ew.seal.Count == 0 {
		ew.seal.FirstSeq = r.Seq
	}
	ew.seal.Count++
	ew.seal.LastSeq = r.Seq
	ew.seal.LastHash = hex.EncodeToString(r.Hash)
	ew.seal.LastEventID, ew.seal.LastPosition = r.EventID.String(), r.Position
	return nil
}

// Close signs and writes the trailer and flushes; it returns the seal.
func (ew *ExportWriter) Close(now time.Time) (ExportSeal, error) {
	ew.seal.LastLink = hex.EncodeToString(ew.link)
	ew.seal.SignedAt = now.UTC().Truncate(time.Second)
	payload, err := json.Marshal(ew.seal)
	if err != nil {
		return ExportSeal{}, fmt.Errorf("audit: export seal: %w", err)
	}
	hdr := jws.NewHeaders()
	for k, v := range map[string]any{jws.TypeKey: ExportType, jws.JWKKey: ew.signer.pub, jws.KeyIDKey: ew.signer.thumb} {
		if err := hdr.Set(k, v); err != nil {
			return ExportSeal{}, fmt.Errorf("audit: export seal: %w", err)
		}
	}
	sig, err := jws.Sign(payload, jws.WithKey(jwa.EdDSA(), ew.signer.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return ExportSeal{}, fmt.Errorf("audit: sign export: %w", err)
	}
	trailer, _ := json.Marshal(struct {
		Signature string `json:"signature"`
	}{string(sig)})
	ew.line(trailer)
	if err := ew.w.Flush(); err != nil {
		return ExportSeal{}, fmt.Errorf("audit: write export: %w", err)
	}
	return ew.seal, nil
}

func fileLink(prev []byte, r Row) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(r.Hash)
	h.Write(Canonical(r))
	return h.Sum(nil)
}

// rowLine is a row's line: its canonical form with hash and link added.
func rowLine(r Row, link []byte) []byte {
	c := Canonical(r)
	b := append(c[:len(c)-1:len(c)-1], `,"hash":"`...)
	b = hex.AppendEncode(b, r.Hash)
	b = append(b, `","link":"`...)
	b = hex.AppendEncode(b, link)
	return append(b, `"}`...)
}

// exportRow is a row line as JSON (the canonical members, hash, link).
type exportRow struct {
	ActorID       string    `json:"actor_id"`
	ActorKind     string    `json:"actor_kind"`
	CausationID   string    `json:"causation_id"`
	ClientIP      string    `json:"client_ip"`
	CorrelationID string    `json:"correlation_id"`
	EventDigest   string    `json:"event_digest"`
	EventID       uuid.UUID `json:"event_id"`
	EventType     string    `json:"event_type"`
	OccurredAt    time.Time `json:"occurred_at"`
	Position      string    `json:"position"`
	RecordedAt    time.Time `json:"recorded_at"`
	Revision      uint64    `json:"revision"`
	Seq           int64     `json:"seq"`
	Stream        string    `json:"stream"`
	Summary       string    `json:"summary"`
	UserAgent     string    `json:"user_agent"`
	Hash          string    `json:"hash"`
	Link          string    `json:"link"`
}

// ExportReport is the outcome of VerifyExport.
type ExportReport struct {
	// OK: every line holds and the seal verifies under the embedded key
	// (and the pinned thumbprint, when one was given).
	OK     bool
	Header ExportHeader
	Seal   ExportSeal
	// Rows is how many row lines were read; Rows below the broken one
	// hold.
	Rows int64
	// Thumbprint is the RFC 7638 thumbprint of the key that signed the
	// seal (empty when the trailer is unreadable).
	Thumbprint string
	// Broken is the first line that does not hold, nil when OK.
	Broken *ExportBreak
	// Last is the last row read in full (for archives: the anchor).
	Last Row
}

// ExportBreak is the first place where an export file does not hold.
type ExportBreak struct {
	// Line is the file's line number (1 is the header); Seq the row's seq
	// when the line is a row.
	Line   int
	Seq    int64
	Reason string
}

func (b *ExportBreak) String() string {
	if b.Seq > 0 {
		return fmt.Sprintf("line %d (seq %d): %s", b.Line, b.Seq, b.Reason)
	}
	return fmt.Sprintf("line %d: %s", b.Line, b.Reason)
}

// ErrNotExport: the file is not an export at all (no header of the
// format).
var ErrNotExport = errors.New("audit: not an audit export file")

// VerifyExport checks an export file offline: the header, each row's
// canonical form, seq order and file link, and the trailer's Ed25519
// signature over the last link, under the key the trailer embeds. With
// pin set, the key's thumbprint must be pin as well. It needs neither the
// database nor the chain key (the keyed links are carried, not
// recomputed: CheckKeyed does that where the key is at hand). The report
// names the first broken line; the error is for reading and for a file
// that is no export.
func VerifyExport(r io.Reader, pin string) (ExportReport, error) {
	var rep ExportReport
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return rep, fmt.Errorf("audit: read export: %w", err)
		}
		return rep, ErrNotExport
	}
	header := bytes.Clone(sc.Bytes())
	if err := json.Unmarshal(header, &rep.Header); err != nil || rep.Header.Format != ExportFormat {
		return rep, ErrNotExport
	}
	sum := sha256.Sum256(header)
	link := sum[:]
	prevHash := rep.Header.PrevHash
	next := rep.Header.PrevSeq + 1
	broken := func(line int, seq int64, format string, args ...any) {
		if rep.Broken == nil {
			rep.Broken = &ExportBreak{Line: line, Seq: seq, Reason: fmt.Sprintf(format, args...)}
		}
	}
	lineNo := 1
	var trailer []byte
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte(`{"signature":`)) {
			trailer = bytes.Clone(line)
			if sc.Scan() {
				broken(lineNo+1, 0, "lines after the signed trailer")
			}
			break
		}
		if rep.Broken != nil {
			continue
		}
		var er exportRow
		if err := json.Unmarshal(line, &er); err != nil {
			broken(lineNo, 0, "not a row: %v", err)
			continue
		}
		row, err := er.row()
		if err != nil {
			broken(lineNo, er.Seq, "%v", err)
			continue
		}
		if row.Seq != next {
			broken(lineNo, row.Seq, "out of order: expected seq %d", next)
			continue
		}
		want := fileLink(link, row)
		if !bytes.Equal(rowLine(row, want), line) {
			if hex.EncodeToString(want) != er.Link {
				broken(lineNo, row.Seq, "the row's link does not follow from the previous line and its content (the row or an earlier line was changed)")
			} else {
				broken(lineNo, row.Seq, "the line is not in canonical form (bytes changed)")
			}
			continue
		}
		link, prevHash = want, er.Hash
		next++
		rep.Rows++
		rep.Last = row
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("audit: read export: %w", err)
	}
	if trailer == nil {
		broken(lineNo+1, 0, "no signed trailer: the file was cut short")
		return rep, nil
	}
	seal, thumb, err := openSeal(trailer)
	rep.Thumbprint = thumb
	switch {
	case err != nil:
		broken(lineNo, 0, "the trailer's signature does not verify: %v", err)
	case pin != "" && thumb != pin:
		broken(lineNo, 0, "signed by key %s, not the pinned %s", thumb, pin)
	default:
		rep.Seal = seal
		switch {
		case seal.HeaderSHA256 != hex.EncodeToString(sum[:]):
			broken(1, 0, "the header was changed: it is not the one the trailer signed")
		case rep.Broken != nil:
		case seal.Count != rep.Rows || seal.LastLink != hex.EncodeToString(link) || seal.LastHash != prevHash:
			broken(lineNo, 0, "the trailer signed %d rows ending in link %s, the file has %d ending in %s (rows removed, added or changed)",
				seal.Count, seal.LastLink, rep.Rows, hex.EncodeToString(link))
		}
	}
	rep.OK = rep.Broken == nil
	return rep, nil
}

// openSeal verifies a trailer line's JWS under the key it embeds.
func openSeal(trailer []byte) (ExportSeal, string, error) {
	var t struct {
		Signature string `json:"signature"`
	}
	if err := json.Unmarshal(trailer, &t); err != nil {
		return ExportSeal{}, "", err
	}
	msg, err := jws.Parse([]byte(t.Signature))
	if err != nil {
		return ExportSeal{}, "", err
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 {
		return ExportSeal{}, "", fmt.Errorf("%d signatures", len(sigs))
	}
	ph := sigs[0].ProtectedHeaders()
	if typ, _ := ph.Type(); typ != ExportType {
		return ExportSeal{}, "", fmt.Errorf("not of type %s", ExportType)
	}
	key, ok := ph.JWK()
	if !ok {
		return ExportSeal{}, "", errors.New("no embedded key")
	}
	thumb, err := thumbprint(key)
	if err != nil {
		return ExportSeal{}, "", err
	}
	var raw ed25519.PublicKey
	if err := jwk.Export(key, &raw); err != nil {
		return ExportSeal{}, thumb, fmt.Errorf("the embedded key is not Ed25519: %w", err)
	}
	payload, err := jws.Verify([]byte(t.Signature), jws.WithKey(jwa.EdDSA(), raw))
	if err != nil {
		return ExportSeal{}, thumb, err
	}
	var seal ExportSeal
	if err := json.Unmarshal(payload, &seal); err != nil {
		return ExportSeal{}, thumb, err
	}
	return seal, thumb, nil
}

func (er exportRow) row() (Row, error) {
	digest, err := hex.DecodeString(er.EventDigest)
	if err != nil || len(digest) != sha256.Size {
		return Row{}, errors.New("event_digest is not 64 hex digits")
	}
	h, err := hex.DecodeString(er.Hash)
	if err != nil || len(h) != sha256.Size {
		return Row{}, errors.New("hash is not 64 hex digits")
	}
	return Row{
		Seq: er.Seq, EventID: er.EventID, Position: er.Position, Stream: er.Stream, Revision: er.Revision,
		EventType: er.EventType, OccurredAt: er.OccurredAt, RecordedAt: er.RecordedAt, ActorKind: er.ActorKind,
		ActorID: er.ActorID, CorrelationID: er.CorrelationID, CausationID: er.CausationID, ClientIP: er.ClientIP,
		UserAgent: er.UserAgent, Summary: er.Summary, EventDigest: digest, Hash: h,
	}, nil
}
