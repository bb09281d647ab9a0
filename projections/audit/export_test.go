package audit_test

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/projections/audit"
)

// exportOf writes an export of n chained rows after prevSeq and returns
// it with the signer.
func exportOf(t *testing.T, prevSeq int64, n int) ([]byte, *audit.ExportSigner) {
	t.Helper()
	signer, err := audit.NewExportSigner(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{1}, audit.KeySize)
	var buf bytes.Buffer
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ew, err := audit.NewExportWriter(&buf, audit.ExportHeader{PrevSeq: prevSeq, ExportedAt: at}, signer)
	if err != nil {
		t.Fatal(err)
	}
	prev := make([]byte, sha256.Size)
	for i := range n {
		r := audit.Row{Seq: prevSeq + int64(i) + 1, EventID: uuid.New(), Position: strings.Repeat("0", 31) + "1", Stream: "user-1",
			EventType: "user.registered.v1", OccurredAt: at, RecordedAt: at, ActorKind: "user", ActorID: "u1",
			Summary: `{"display_name":"Ada <&> \u00e9"}`, EventDigest: make([]byte, sha256.Size)}
		r.Hash = audit.Link(key, prev, r)
		prev = r.Hash
		if err := ew.Row(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ew.Close(at); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), signer
}

func TestExportRoundTripsAndRefusesRowsOutOfOrder(t *testing.T) {
	t.Parallel()
	file, signer := exportOf(t, 0, 5)
	rep, err := audit.VerifyExport(bytes.NewReader(file), signer.Thumbprint())
	if err != nil || !rep.OK || rep.Rows != 5 || rep.Seal.FirstSeq != 1 || rep.Seal.LastSeq != 5 || rep.Thumbprint != signer.Thumbprint() {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	// An empty range is a valid export too.
	empty, _ := exportOf(t, 0, 0)
	if rep, err := audit.VerifyExport(bytes.NewReader(empty), ""); err != nil || !rep.OK || rep.Rows != 0 {
		t.Fatalf("verify of an empty export: %+v %v", rep, err)
	}
	signer2, _ := audit.NewExportSigner(bytes.Repeat([]byte{7}, 32))
	if signer2.Thumbprint() != signer.Thumbprint() {
		t.Error("one seed, two keys")
	}
	ew, _ := audit.NewExportWriter(&bytes.Buffer{}, audit.ExportHeader{PrevSeq: 3}, signer)
	if err := ew.Row(audit.Row{Seq: 5}); err == nil {
		t.Error("a row out of order was written")
	}
	if _, err := audit.VerifyExport(strings.NewReader("{\"format\":\"something else\"}\n"), ""); err == nil {
		t.Error("a file of another format verified")
	}
}

func TestExportTamperingIsNamed(t *testing.T) {
	t.Parallel()
	file, _ := exportOf(t, 10, 4)
	lines := strings.Split(strings.TrimSuffix(string(file), "\n"), "\n")
	join := func(ls []string) string { return strings.Join(ls, "\n") + "\n" }
	with := func(i int, s string) string {
		ls := append([]string(nil), lines...)
		ls[i] = s
		return join(ls)
	}
	otherSigner, _ := exportOf(t, 10, 4)
	otherLines := strings.Split(strings.TrimSuffix(string(otherSigner), "\n"), "\n")
	for _, c := range []struct {
		name, file, want string
	}{
		{"cut short", join(lines[:len(lines)-1]), "no signed trailer"},
		{"last row removed", join(append(append([]string(nil), lines[:len(lines)-2]...), lines[len(lines)-1])), "the trailer signed 4 rows"},
		{"a row changed", with(2, strings.Replace(lines[2], `"actor_id":"u1"`, `"actor_id":"u2"`, 1)), "line 3 (seq 12): the row's link"},
		{"another export's trailer", with(len(lines)-1, otherLines[len(otherLines)-1]), "the trailer signed 4 rows ending in link"},
		{"lines after the trailer", join(append(append([]string(nil), lines...), lines[1])), "after the signed trailer"},
	} {
		rep, err := audit.VerifyExport(strings.NewReader(c.file), "")
		if err != nil || rep.OK || rep.Broken == nil || !strings.Contains(rep.Broken.String(), c.want) {
			t.Errorf("%s: %+v %v, want broken with %q", c.name, rep.Broken, err, c.want)
		}
	}
}
