package esdbserver_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/authledger/authledger/test/esdbserver"
)

func start(t *testing.T, opts ...esdbserver.Option) *esdbserver.Server {
	t.Helper()
	srv, err := esdbserver.Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T, srv *esdbserver.Server) *client.Client {
	t.Helper()
	conf, err := client.ParseConnectionString(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// raw is a bare gRPC client, to look at messages the official client hides.
func raw(t *testing.T, srv *esdbserver.Server) api.StreamsClient {
	t.Helper()
	conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return api.NewStreamsClient(conn)
}

func jsonEvent(typ string) client.EventData {
	return client.EventData{EventID: uuid.New(), EventType: typ, ContentType: client.ContentTypeJson, Data: []byte(`{"a":1}`), Metadata: []byte(`{"m":2}`)}
}

func TestClientFeatureDetection(t *testing.T) {
	t.Parallel()
	srv := start(t)
	c := newClient(t, srv)
	v, err := c.GetServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if strconv.Itoa(v.Major)+"."+strconv.Itoa(v.Minor)+"."+strconv.Itoa(v.Patch) != esdbserver.ServerVersion {
		t.Fatalf("server version = %+v, want %s", v, esdbserver.ServerVersion)
	}
}

func TestRecordedEventCarriesESDBMetadata(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	srv := start(t, esdbserver.WithClock(func() time.Time { return at }))
	c := newClient(t, srv)
	ctx := t.Context()
	e := jsonEvent("thing.happened.v1")
	res, err := c.AppendToStream(ctx, "thing-1", client.AppendToStreamOptions{ExpectedRevision: client.NoStream{}}, e)
	if err != nil {
		t.Fatal(err)
	}
	if res.NextExpectedVersion != 0 || res.CommitPosition == 0 || res.PreparePosition == 0 {
		t.Fatalf("WriteResult = %+v, want revision 0 and positions > 0", res)
	}
	rs, err := c.ReadStream(ctx, "thing-1", client.ReadStreamOptions{From: client.Start{}}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	got, err := rs.Recv()
	if err != nil {
		t.Fatal(err)
	}
	ev := got.OriginalEvent()
	if ev.EventID != e.EventID || ev.EventType != e.EventType || ev.ContentType != "application/json" ||
		string(ev.Data) != `{"a":1}` || string(ev.UserMetadata) != `{"m":2}` || ev.StreamID != "thing-1" || ev.EventNumber != 0 {
		t.Fatalf("event = %+v", ev)
	}
	// "created" is .NET ticks since the Unix epoch: 100 ns resolution.
	if !ev.CreatedDate.Equal(at.Truncate(100 * time.Nanosecond)) {
		t.Errorf("CreatedDate = %v, want %v", ev.CreatedDate, at)
	}
	if ev.Position.Commit != res.CommitPosition || ev.Position.Prepare != res.PreparePosition {
		t.Errorf("Position = %+v, want %+v", ev.Position, res)
	}
	if _, err := rs.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("second Recv = %v, want EOF", err)
	}
}

func TestWrongExpectedVersionDetails(t *testing.T) {
	t.Parallel()
	srv := start(t)
	c := newClient(t, srv)
	ctx := t.Context()
	if _, err := c.AppendToStream(ctx, "s", client.AppendToStreamOptions{ExpectedRevision: client.NoStream{}}, jsonEvent("a"), jsonEvent("b")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		expected *api.AppendReq_Options
		check    func(*api.AppendResp_WrongExpectedVersion) bool
	}{
		{"no stream", &api.AppendReq_Options{ExpectedStreamRevision: &api.AppendReq_Options_NoStream{NoStream: &shared.Empty{}}},
			func(w *api.AppendResp_WrongExpectedVersion) bool {
				return w.GetCurrentRevision() == 1 && w.GetExpectedNoStream() != nil
			}},
		{"revision", &api.AppendReq_Options{ExpectedStreamRevision: &api.AppendReq_Options_Revision{Revision: 7}},
			func(w *api.AppendResp_WrongExpectedVersion) bool {
				return w.GetCurrentRevision() == 1 && w.GetExpectedRevision() == 7 && w.GetCurrentRevision_20_6_0() == 1
			}},
	}
	rc := raw(t, srv)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := rc.Append(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tc.expected.StreamIdentifier = &shared.StreamIdentifier{StreamName: []byte("s")}
			if err := stream.Send(&api.AppendReq{Content: &api.AppendReq_Options_{Options: tc.expected}}); err != nil {
				t.Fatal(err)
			}
			id := uuid.New()
			if err := stream.Send(&api.AppendReq{Content: &api.AppendReq_ProposedMessage_{ProposedMessage: &api.AppendReq_ProposedMessage{
				Id:       &shared.UUID{Value: &shared.UUID_String_{String_: id.String()}},
				Metadata: map[string]string{"type": "x", "content-type": "application/json"},
				Data:     []byte("{}"),
			}}}); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.CloseAndRecv()
			if err != nil {
				t.Fatal(err)
			}
			w := resp.GetWrongExpectedVersion()
			if w == nil || !tc.check(w) {
				t.Fatalf("response = %v", resp)
			}
		})
	}
}

func TestIdempotentAppendReturnsOriginalRevision(t *testing.T) {
	t.Parallel()
	srv := start(t)
	c := newClient(t, srv)
	ctx := t.Context()
	a, b := jsonEvent("a"), jsonEvent("b")
	first, err := c.AppendToStream(ctx, "s", client.AppendToStreamOptions{ExpectedRevision: client.NoStream{}}, a, b)
	if err != nil {
		t.Fatal(err)
	}
	n := srv.EventCount()
	for _, exp := range []client.ExpectedRevision{client.NoStream{}, client.Any{}, client.StreamExists{}} {
		again, err := c.AppendToStream(ctx, "s", client.AppendToStreamOptions{ExpectedRevision: exp}, a, b)
		if err != nil || again.NextExpectedVersion != first.NextExpectedVersion {
			t.Fatalf("re-append (%T) = %+v, %v; want revision %d", exp, again, err, first.NextExpectedVersion)
		}
	}
	if srv.EventCount() != n {
		t.Fatalf("idempotent appends wrote %d records", srv.EventCount()-n)
	}
	// A partial overlap is refused.
	if _, err := c.AppendToStream(ctx, "s", client.AppendToStreamOptions{ExpectedRevision: client.NoStream{}}, a, jsonEvent("c")); err == nil {
		t.Fatal("append overlapping a previous write succeeded")
	}
}

func TestSubscriptionConfirmsFirstAndFiltersWithCheckpoints(t *testing.T) {
	t.Parallel()
	srv := start(t)
	c := newClient(t, srv)
	ctx := t.Context()
	for i := range 6 {
		typ := "noise"
		if i == 3 {
			typ = "wanted"
		}
		if _, err := c.AppendToStream(ctx, "s", client.AppendToStreamOptions{ExpectedRevision: client.Any{}}, jsonEvent(typ)); err != nil {
			t.Fatal(err)
		}
	}
	rc := raw(t, srv)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	read, err := rc.Read(rctx, &api.ReadReq{Options: &api.ReadReq_Options{
		StreamOption: &api.ReadReq_Options_All{All: &api.ReadReq_Options_AllOptions{AllOption: &api.ReadReq_Options_AllOptions_Start{Start: &shared.Empty{}}}},
		CountOption:  &api.ReadReq_Options_Subscription{Subscription: &api.ReadReq_Options_SubscriptionOptions{}},
		FilterOption: &api.ReadReq_Options_Filter{Filter: &api.ReadReq_Options_FilterOptions{
			Filter: &api.ReadReq_Options_FilterOptions_EventType{EventType: &api.ReadReq_Options_FilterOptions_Expression{Regex: "^wanted$"}},
			Window: &api.ReadReq_Options_FilterOptions_Max{Max: 2}, CheckpointIntervalMultiplier: 1,
		}},
		UuidOption: &api.ReadReq_Options_UUIDOption{Content: &api.ReadReq_Options_UUIDOption_Structured{Structured: &shared.Empty{}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for len(kinds) < 6 {
		m, err := read.Recv()
		if err != nil {
			t.Fatal(err)
		}
		switch m.GetContent().(type) {
		case *api.ReadResp_Confirmation:
			kinds = append(kinds, "confirm")
		case *api.ReadResp_Event:
			kinds = append(kinds, "event:"+m.GetEvent().GetEvent().GetMetadata()["type"])
		case *api.ReadResp_Checkpoint_:
			kinds = append(kinds, "checkpoint")
		case *api.ReadResp_CaughtUp_:
			kinds = append(kinds, "caught-up")
		default:
			kinds = append(kinds, "other")
		}
	}
	want := []string{"confirm", "checkpoint", "event:wanted", "checkpoint", "checkpoint", "caught-up"}
	for i, k := range want {
		if kinds[i] != k {
			t.Fatalf("messages = %v, want %v...", kinds, want)
		}
	}
}

func TestDropSubscriptionsEndsThemWithAnError(t *testing.T) {
	t.Parallel()
	srv := start(t)
	c := newClient(t, srv)
	sub, err := c.SubscribeToAll(t.Context(), client.SubscribeToAllOptions{From: client.Start{}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if n := srv.DropSubscriptions(); n != 1 {
		t.Fatalf("DropSubscriptions = %d, want 1", n)
	}
	for {
		ev := sub.Recv()
		if ev.SubscriptionDropped != nil {
			if ev.SubscriptionDropped.Error == nil {
				t.Fatal("dropped without an error")
			}
			return
		}
	}
}

func TestTombstoneAndSoftDelete(t *testing.T) {
	t.Parallel()
	srv := start(t)
	c := newClient(t, srv)
	ctx := t.Context()
	for _, s := range []string{"hard", "soft"} {
		if _, err := c.AppendToStream(ctx, s, client.AppendToStreamOptions{ExpectedRevision: client.NoStream{}}, jsonEvent("a")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.TombstoneStream(ctx, "hard", client.TombstoneStreamOptions{ExpectedRevision: client.Revision(0)}); err != nil {
		t.Fatal(err)
	}
	rs, err := c.ReadStream(ctx, "hard", client.ReadStreamOptions{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rs.Recv()
	var e *client.Error
	if !errors.As(err, &e) || e.Code() != client.ErrorCodeStreamDeleted {
		t.Fatalf("read of a tombstoned stream = %v, want ErrorCodeStreamDeleted", err)
	}
	if _, err := c.AppendToStream(ctx, "hard", client.AppendToStreamOptions{ExpectedRevision: client.Any{}}, jsonEvent("b")); !errors.As(err, &e) || e.Code() != client.ErrorCodeStreamDeleted {
		t.Fatalf("append to a tombstoned stream = %v, want ErrorCodeStreamDeleted", err)
	}

	if _, err := c.DeleteStream(ctx, "soft", client.DeleteStreamOptions{ExpectedRevision: client.Revision(0)}); err != nil {
		t.Fatal(err)
	}
	rs, err = c.ReadStream(ctx, "soft", client.ReadStreamOptions{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = rs.Recv(); !errors.As(err, &e) || e.Code() != client.ErrorCodeResourceNotFound {
		t.Fatalf("read of a soft-deleted stream = %v, want ErrorCodeResourceNotFound", err)
	}
	res, err := c.AppendToStream(ctx, "soft", client.AppendToStreamOptions{ExpectedRevision: client.Revision(0)}, jsonEvent("b"))
	if err != nil || res.NextExpectedVersion != 1 {
		t.Fatalf("append after soft delete = %+v, %v; want revision 1", res, err)
	}
}
