package sealed_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authledger/authledger/auth/datakeys"
	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/domain/session"
	"github.com/authledger/authledger/domain/user"
	"github.com/authledger/authledger/events"
	"github.com/authledger/authledger/eventstore"
	"github.com/authledger/authledger/eventstore/sealed"
	"github.com/authledger/authledger/projections/projtest"
)

type env struct {
	pe     *projtest.Env
	keys   *datakeys.Keyring
	store  *sealed.Store
	reg    *events.Registry
	master *keys.MasterKey
}

func newMaster(t *testing.T) *keys.MasterKey {
	t.Helper()
	b := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(b)
	m, err := keys.NewMasterKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pe := projtest.New(t)
	if err := datakeys.EnsureTable(t.Context(), pe.Pool); err != nil {
		t.Fatal(err)
	}
	master := newMaster(t)
	ring, err := datakeys.New(datakeys.Config{Pool: pe.Pool, MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	reg := events.NewRegistry()
	if err := errors.Join(user.RegisterEvents(reg), session.RegisterEvents(reg)); err != nil {
		t.Fatal(err)
	}
	s, err := sealed.New(pe.Store, ring, reg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{pe: pe, keys: ring, store: s, reg: reg, master: master}
}

func eventData(t *testing.T, e events.Event, md events.Metadata) eventstore.EventData {
	t.Helper()
	name, data, err := events.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	md.EventID = uuid.New()
	md.OccurredAt = time.Now().UTC()
	mdb, err := events.EncodeMetadata(md)
	if err != nil {
		t.Fatal(err)
	}
	return eventstore.EventData{ID: md.EventID, Type: name, Data: data, Metadata: mdb}
}

func (e *env) rawRow(t *testing.T, stream string) string {
	t.Helper()
	var text string
	if err := e.pe.Admin.QueryRow(t.Context(), `SELECT data::text || metadata::text FROM events WHERE stream = $1 ORDER BY revision LIMIT 1`, stream).Scan(&text); err != nil {
		t.Fatal(err)
	}
	return text
}

func (e *env) readOne(t *testing.T, stream string) (events.Event, events.Metadata, eventstore.RecordedEvent) {
	t.Helper()
	recs, err := e.store.ReadStream(t.Context(), stream, eventstore.ReadStreamOptions{})
	if err != nil || len(recs) == 0 {
		t.Fatalf("read %s: %v %v", stream, recs, err)
	}
	ev, err := e.reg.Decode(recs[0].Type, recs[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	var md events.Metadata
	if err := json.Unmarshal(recs[0].Metadata, &md); err != nil {
		t.Fatal(err)
	}
	return ev, md, recs[0]
}

// A personal event is sealed on its way into the log, reads back in
// clear, and, once its subject is erased, reads with the personal members
// null and the metadata's IP and user agent gone; the log's bytes are the
// same before and after (AsLogged), which is what the audit chain hashes.
func TestSealedInTheLogOpenUntilErased(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	id := uuid.New()
	reg := user.Registered{UserID: id, Email: "ines@example.com", DisplayName: "Inès Ñandú", Roles: []string{"user"}, RegisteredAt: time.Now().UTC()}
	md := events.Metadata{Actor: events.Actor{Kind: events.ActorAnonymous}, ClientIP: "192.0.2.44", UserAgent: "SealTest/1"}
	stream := user.StreamName(id)
	if _, err := e.store.Append(ctx, stream, eventstore.NoStream{}, eventData(t, reg, md)); err != nil {
		t.Fatal(err)
	}
	raw := e.rawRow(t, stream)
	for _, secret := range []string{"ines@example.com", "Inès", "192.0.2.44", "SealTest/1"} {
		if strings.Contains(raw, secret) {
			t.Errorf("the log holds %q in clear: %s", secret, raw)
		}
	}
	if !strings.Contains(raw, `"enc": "v1"`) || !strings.Contains(raw, id.String()) {
		t.Errorf("no envelope keyed by the user in %s", raw)
	}
	got, gotMD, rec := e.readOne(t, stream)
	if r := got.(user.Registered); r.Email != reg.Email || r.DisplayName != reg.DisplayName || gotMD.ClientIP != md.ClientIP || gotMD.UserAgent != md.UserAgent {
		t.Fatalf("read back %+v %+v", r, gotMD)
	}
	logged := rec.AsLogged()
	if rec.Logged == nil || !bytes.Contains(logged.Data, []byte(`"enc"`)) {
		t.Fatalf("AsLogged is not the log's bytes: %s", logged.Data)
	}

	if err := e.keys.Erase(ctx, id); err != nil {
		t.Fatal(err)
	}
	got, gotMD, rec = e.readOne(t, stream)
	if r := got.(user.Registered); r.Email != "" || r.DisplayName != "" || r.UserID != id || len(r.Roles) != 1 || gotMD.ClientIP != "" || gotMD.UserAgent != "" {
		t.Fatalf("after erasure %+v %+v", r, gotMD)
	}
	if after := rec.AsLogged(); !bytes.Equal(after.Data, logged.Data) || !bytes.Equal(after.Metadata, logged.Metadata) {
		t.Fatal("erasure changed the log's bytes")
	}
	// Another process (its own key cache) sees the erasure too.
	other, err := datakeys.New(datakeys.Config{Pool: e.pe.Pool, MasterKey: e.master})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.ForOpening(ctx, id); !errors.Is(err, datakeys.ErrErased) {
		t.Fatalf("another keyring opens an erased key: %v", err)
	}
	// Nothing new is sealed for an erased user: the value is dropped.
	late := user.DisplayNameChanged{UserID: id, DisplayName: "Back again", ChangedAt: time.Now().UTC()}
	if _, err := e.store.Append(ctx, stream, eventstore.Any{}, eventData(t, late, events.Metadata{Actor: events.Actor{Kind: events.ActorUser, ID: id.String()}, ClientIP: "192.0.2.45"})); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := e.pe.Admin.QueryRow(ctx, `SELECT data::text || metadata::text FROM events WHERE stream = $1 AND revision = 1`, stream).Scan(&text); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, "Back again") || strings.Contains(text, "192.0.2.45") || strings.Contains(text, `"enc"`) {
		t.Fatalf("an erased user's new event: %s", text)
	}
}

// Events written before sealing existed (plain values in the log) read as
// they are; an envelope that does not open (tampered) is an error, never
// taken for erased data; a reader below the decorator (the raw store)
// reads sealed members as null.
func TestPlainEventsReadAndTamperedOnesFail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	old := uuid.New()
	plain := user.Registered{UserID: old, Email: "old@example.com", DisplayName: "Old", Roles: []string{"user"}, RegisteredAt: time.Now().UTC()}
	if _, err := e.pe.Store.Append(ctx, user.StreamName(old), eventstore.NoStream{}, eventData(t, plain, events.Metadata{ClientIP: "192.0.2.1"})); err != nil {
		t.Fatal(err)
	}
	got, md, rec := e.readOne(t, user.StreamName(old))
	if got.(user.Registered).Email != "old@example.com" || md.ClientIP != "192.0.2.1" || rec.Logged != nil {
		t.Fatalf("a plain event read %+v %+v", got, md)
	}

	id := uuid.New()
	started := session.Started{SessionID: uuid.New(), UserID: id, Method: "password", IP: "192.0.2.9", UserAgent: "UA/9",
		Claims: &session.Claims{Email: "s@example.com", Name: "S", Roles: []string{"user"}}, StartedAt: time.Now().UTC()}
	stream := session.StreamName(started.SessionID)
	if _, err := e.store.Append(ctx, stream, eventstore.NoStream{}, eventData(t, started, events.Metadata{})); err != nil {
		t.Fatal(err)
	}
	raws, err := e.pe.Store.ReadStream(ctx, stream, eventstore.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	below, err := e.reg.Decode(raws[0].Type, raws[0].Data)
	if err != nil {
		t.Fatalf("the registry refuses a sealed event read below the decorator: %v", err)
	}
	if s := below.(session.Started); s.IP != "" || s.Claims != nil || s.UserID != id {
		t.Fatalf("sealed members read below the decorator: %+v", s)
	}
	// Swap the IP's ciphertext for the user agent's: each is bound to its
	// member, so it does not open.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raws[0].Data, &obj); err != nil {
		t.Fatal(err)
	}
	obj["ip"] = obj["user_agent"]
	tampered, _ := json.Marshal(obj)
	raws[0].Data = tampered
	if _, err := e.store.Open(ctx, raws[0]); err == nil {
		t.Fatal("a moved ciphertext opened")
	}
}

// A data key is sealed under the master key: another master key cannot
// open it, and says so.
func TestDataKeysNeedTheirMasterKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := uuid.New()
	if _, err := e.keys.ForSealing(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	other, err := datakeys.New(datakeys.Config{Pool: e.pe.Pool, MasterKey: newMaster(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.ForOpening(t.Context(), id); !errors.Is(err, datakeys.ErrUnknownMasterKey) {
		t.Fatalf("another master key: %v", err)
	}
	if _, err := e.keys.ForOpening(context.Background(), uuid.New()); !errors.Is(err, datakeys.ErrNoKey) {
		t.Fatalf("a user without a key: %v", err)
	}
	var sealedKey []byte
	if err := e.pe.Admin.QueryRow(t.Context(), `SELECT sealed_key FROM user_data_keys WHERE user_id = $1`, id).Scan(&sealedKey); err != nil || len(sealedKey) < 32+16 {
		t.Fatalf("the stored key: %x %v", sealedKey, err)
	}
}
