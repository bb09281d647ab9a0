// Package esdbserver is an in-process EventStoreDB test double that speaks
// EventStoreDB's real gRPC protocol (the Streams and ServerFeatures services,
// from the client module's own generated interfaces) over a real TCP socket
// on 127.0.0.1, with state in memory.
//
// It exists so that the eventstore/esdb adapter, built on the official Go
// client, runs in CI where EventStoreDB cannot be installed. It implements
// EventStoreDB's semantics as the client observes them: 0-based revisions,
// expected-revision checks with the wrong-version details set, idempotent
// re-append of the same event ids, stream-not-found and stream-deleted
// answers, $all positions (commit, prepare) that increase and are never 0,
// catch-up and live subscriptions that start with a confirmation, and
// checkpoints when a subscription is filtered.
//
// Only tests import it: it is never part of the authledger binary. It is not
// a database; persistence, projections, persistent subscriptions, ACLs,
// stream metadata ($maxAge...) and link resolution are not implemented.
package esdbserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ServerVersion is what GetSupportedMethods reports, the EventStoreDB
// release whose behaviour the double follows.
const ServerVersion = "24.10.0"

// deletedRevision is the revision EventStoreDB gives a tombstone record
// (EventNumber.DeletedStream, long.MaxValue).
const deletedRevision = math.MaxInt64

// firstPosition is where the log starts. A real node's log starts with its
// own system records, so the first user event never has position 0.
const firstPosition = 1024

// Server is a running in-process EventStoreDB node. Its zero value is not
// usable; call Start.
type Server struct {
	grpc *grpc.Server
	lis  net.Listener
	now  func() time.Time

	mu      sync.Mutex
	streams map[string]*stream
	log     []*record // $all, in position order
	nextPos uint64
	changed chan struct{} // closed and replaced after every write
	subs    map[*liveSub]struct{}
	closed  bool
}

type stream struct {
	events         []*record // index is the revision
	ids            map[uuid.UUID]uint64
	tombstoned     bool
	truncateBefore uint64 // soft delete: revisions below are hidden
}

func (st *stream) exists() bool { return st != nil && len(st.events) > 0 }

// current is the last revision, -1 when the stream has no event.
func (st *stream) current() int64 {
	if st == nil {
		return -1
	}
	return int64(len(st.events)) - 1
}

type record struct {
	stream      string
	revision    uint64
	id          uuid.UUID
	eventType   string
	contentType string
	created     int64 // .NET ticks (100 ns) since the Unix epoch
	data        []byte
	custom      []byte
	pos         uint64 // commit and prepare positions are equal
}

type liveSub struct {
	drop chan struct{}
}

// Option configures Start.
type Option func(*Server)

// WithClock makes the server stamp events with now() instead of the wall
// clock.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// Start listens on 127.0.0.1 on a free port and serves until Close.
func Start(opts ...Option) (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("esdbserver: listen: %w", err)
	}
	s := &Server{
		lis:     lis,
		now:     time.Now,
		streams: map[string]*stream{},
		nextPos: firstPosition,
		changed: make(chan struct{}),
		subs:    map[*liveSub]struct{}{},
	}
	for _, o := range opts {
		o(s)
	}
	s.grpc = grpc.NewServer()
	api.RegisterStreamsServer(s.grpc, &streamsService{s: s})
	serverfeatures.RegisterServerFeaturesServer(s.grpc, featuresService{})
	go func() { _ = s.grpc.Serve(lis) }()
	return s, nil
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// URL is a connection string for the official client: a single node,
// without TLS, so the client asks no gossip.
func (s *Server) URL() string { return "esdb://" + s.Addr() + "?tls=false" }

// Close stops the server, ending every call in flight. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.grpc.Stop()
}

// DropSubscriptions ends every active subscription (a Read with the
// subscription option) with an Unavailable error, as a node restart or a
// network fault would, and reports how many it ended. Reads and appends are
// not affected, and new subscriptions are accepted at once.
func (s *Server) DropSubscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.subs)
	for sub := range s.subs {
		close(sub.drop)
		delete(s.subs, sub)
	}
	return n
}

// ActiveSubscriptions is the number of subscriptions being served, so a
// test can wait for a client to (re)subscribe.
func (s *Server) ActiveSubscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// EventCount is the number of records in $all, system records included.
func (s *Server) EventCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// writeLocked appends records to stream name and to $all, and wakes the
// subscriptions. s.mu is held.
func (s *Server) writeLocked(name string, st *stream, proposed []proposal) *record {
	var last *record
	created := s.now().UnixNano() / 100
	for _, p := range proposed {
		r := &record{
			stream:      name,
			id:          p.id,
			eventType:   p.eventType,
			contentType: p.contentType,
			created:     created,
			data:        p.data,
			custom:      p.custom,
			pos:         s.nextPos,
		}
		if st != nil {
			r.revision = uint64(len(st.events))
			st.events = append(st.events, r)
			st.ids[p.id] = r.revision
		} else {
			r.revision = deletedRevision
		}
		// Advance as a transaction file would: by the record's size.
		s.nextPos += uint64(128 + len(name) + len(p.eventType) + len(p.data) + len(p.custom))
		s.log = append(s.log, r)
		last = r
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return last
}

func (s *Server) streamLocked(name string) *stream {
	st := s.streams[name]
	if st == nil {
		st = &stream{ids: map[uuid.UUID]uint64{}}
		s.streams[name] = st
	}
	return st
}

type proposal struct {
	id          uuid.UUID
	eventType   string
	contentType string
	data        []byte
	custom      []byte
}

// expectation is an expected revision as the wire gives it: -1 no stream,
// -2 any, -4 stream exists (EventStoreDB's ExpectedVersion values), or a
// revision >= 0.
type expectation int64

const (
	expectNoStream     expectation = -1
	expectAny          expectation = -2
	expectStreamExists expectation = -4
)

// satisfied reports whether a stream whose last revision is cur (-1: no
// event) meets x.
func (x expectation) satisfied(cur int64) bool {
	switch x {
	case expectAny:
		return true
	case expectStreamExists:
		return cur >= 0
	default:
		return int64(x) == cur
	}
}

func (s *Server) register() *liveSub {
	sub := &liveSub{drop: make(chan struct{})}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	return sub
}

func (s *Server) unregister(sub *liveSub) {
	s.mu.Lock()
	delete(s.subs, sub)
	s.mu.Unlock()
}

// featuresService answers the client's feature detection on connect.
type featuresService struct {
	serverfeatures.UnimplementedServerFeaturesServer
}

func (featuresService) GetSupportedMethods(context.Context, *shared.Empty) (*serverfeatures.SupportedMethods, error) {
	const svc = "event_store.client.streams.streams"
	m := func(name string) *serverfeatures.SupportedMethod {
		return &serverfeatures.SupportedMethod{MethodName: name, ServiceName: svc}
	}
	// batchappend is not listed: the client then never uses it.
	return &serverfeatures.SupportedMethods{
		EventStoreServerVersion: ServerVersion,
		Methods:                 []*serverfeatures.SupportedMethod{m("read"), m("append"), m("delete"), m("tombstone")},
	}, nil
}

// streamsService implements event_store.client.streams.Streams.
type streamsService struct {
	api.UnimplementedStreamsServer
	s *Server
}

// ---- errors, shaped as EventStoreDB sends them (status + trailers) ----

func streamDeletedErr(setTrailer func(metadata.MD), name string) error {
	setTrailer(metadata.Pairs("exception", "stream-deleted", "stream-name", name))
	return status.Errorf(codes.FailedPrecondition, "Event stream '%s' is deleted.", name)
}

func wrongVersionErr(setTrailer func(metadata.MD), op, name string, expected expectation, cur int64) error {
	setTrailer(metadata.Pairs(
		"exception", "wrong-expected-version",
		"stream-name", name,
		"expected-version", fmt.Sprint(int64(expected)),
		"actual-version", fmt.Sprint(cur),
	))
	return status.Errorf(codes.FailedPrecondition,
		"%s failed due to WrongExpectedVersion. Stream: %s, Expected version: %d, Actual version: %d",
		op, name, int64(expected), cur)
}

func invalidArg(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// ---- Append ----

func (svc *streamsService) Append(srv api.Streams_AppendServer) error {
	first, err := srv.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return invalidArg("the first append message must carry the options")
	}
	name := string(opts.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return invalidArg("stream name is required")
	}
	var expected expectation
	switch o := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Revision:
		if o.Revision > math.MaxInt64-1 {
			return invalidArg("revision out of range")
		}
		expected = expectation(o.Revision)
	case *api.AppendReq_Options_NoStream:
		expected = expectNoStream
	case *api.AppendReq_Options_Any:
		expected = expectAny
	case *api.AppendReq_Options_StreamExists:
		expected = expectStreamExists
	default:
		return invalidArg("expected stream revision is required")
	}

	var proposed []proposal
	for {
		req, err := srv.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		pm := req.GetProposedMessage()
		if pm == nil {
			return invalidArg("only proposed messages may follow the options")
		}
		p, err := toProposal(pm)
		if err != nil {
			return err
		}
		proposed = append(proposed, p)
	}

	s := svc.s
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	if st != nil && st.tombstoned {
		return streamDeletedErr(srv.SetTrailer, name)
	}
	cur := st.current()

	// Idempotency: the same event ids at the same place are the original
	// write's success, without a position (as EventStoreDB answers).
	if last, ok, corrupt := idempotent(st, expected, proposed); ok {
		return srv.SendAndClose(successResp(int64(last), nil))
	} else if !corrupt && expected.satisfied(cur) {
		if len(proposed) == 0 {
			return srv.SendAndClose(successResp(cur, nil))
		}
		r := s.writeLocked(name, s.streamLocked(name), proposed)
		return srv.SendAndClose(successResp(int64(r.revision), r))
	}
	return srv.SendAndClose(wrongVersionResp(expected, cur))
}

// idempotent reports whether proposed were already written by an earlier
// append at expected (ok, with the revision of the last of them), or whether
// only some of them were (corrupt: EventStoreDB refuses the write).
func idempotent(st *stream, expected expectation, proposed []proposal) (last uint64, ok, corrupt bool) {
	if st == nil || len(proposed) == 0 {
		return 0, false, false
	}
	var start uint64
	switch expected {
	case expectAny, expectStreamExists:
		r, found := st.ids[proposed[0].id]
		if !found {
			return 0, false, false
		}
		start = r
	default:
		start = uint64(int64(expected) + 1)
		if int64(expected) >= st.current() {
			return 0, false, false
		}
	}
	for i, p := range proposed {
		rev := start + uint64(i)
		if rev >= uint64(len(st.events)) || st.events[rev].id != p.id {
			return 0, false, i > 0 || expected == expectAny || expected == expectStreamExists
		}
	}
	return start + uint64(len(proposed)) - 1, true, false
}

func toProposal(pm *api.AppendReq_ProposedMessage) (proposal, error) {
	id, err := fromProtoUUID(pm.GetId())
	if err != nil {
		return proposal{}, invalidArg("event id: %v", err)
	}
	md := pm.GetMetadata()
	if md["type"] == "" {
		return proposal{}, invalidArg("event %s: the type metadata is required", id)
	}
	if md["content-type"] == "" {
		return proposal{}, invalidArg("event %s: the content-type metadata is required", id)
	}
	return proposal{
		id:          id,
		eventType:   md["type"],
		contentType: md["content-type"],
		data:        append([]byte(nil), pm.GetData()...),
		custom:      append([]byte(nil), pm.GetCustomMetadata()...),
	}, nil
}

func successResp(cur int64, last *record) *api.AppendResp {
	ok := &api.AppendResp_Success{}
	if cur < 0 {
		ok.CurrentRevisionOption = &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
	} else {
		ok.CurrentRevisionOption = &api.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(cur)}
	}
	if last != nil {
		ok.PositionOption = &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
			CommitPosition: last.pos, PreparePosition: last.pos,
		}}
	} else {
		ok.PositionOption = &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	}
	return &api.AppendResp{Result: &api.AppendResp_Success_{Success: ok}}
}

func wrongVersionResp(expected expectation, cur int64) *api.AppendResp {
	w := &api.AppendResp_WrongExpectedVersion{}
	if cur < 0 {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: &shared.Empty{}}
	} else {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(cur)}
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: uint64(cur)}
	}
	switch expected {
	case expectAny:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: &shared.Empty{}}
	case expectStreamExists:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: &shared.Empty{}}
	case expectNoStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
	default:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: uint64(expected)}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: uint64(expected)}
	}
	return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}
}

// ---- Delete and Tombstone ----

type deleteOptions interface {
	GetStreamIdentifier() *shared.StreamIdentifier
}

func deleteExpectation(x any) (expectation, error) {
	switch o := x.(type) {
	case *api.DeleteReq_Options_Revision:
		return expectation(o.Revision), nil
	case *api.TombstoneReq_Options_Revision:
		return expectation(o.Revision), nil
	case *api.DeleteReq_Options_NoStream, *api.TombstoneReq_Options_NoStream:
		return expectNoStream, nil
	case *api.DeleteReq_Options_Any, *api.TombstoneReq_Options_Any:
		return expectAny, nil
	case *api.DeleteReq_Options_StreamExists, *api.TombstoneReq_Options_StreamExists:
		return expectStreamExists, nil
	}
	return 0, invalidArg("expected stream revision is required")
}

func (svc *streamsService) Delete(ctx context.Context, req *api.DeleteReq) (*api.DeleteResp, error) {
	o := req.GetOptions()
	expected, err := deleteExpectation(o.GetExpectedStreamRevision())
	if err != nil {
		return nil, err
	}
	r, err := svc.s.remove(ctx, "Delete", o, expected, false)
	if err != nil {
		return nil, err
	}
	return &api.DeleteResp{PositionOption: &api.DeleteResp_Position_{Position: &api.DeleteResp_Position{
		CommitPosition: r.pos, PreparePosition: r.pos,
	}}}, nil
}

func (svc *streamsService) Tombstone(ctx context.Context, req *api.TombstoneReq) (*api.TombstoneResp, error) {
	o := req.GetOptions()
	expected, err := deleteExpectation(o.GetExpectedStreamRevision())
	if err != nil {
		return nil, err
	}
	r, err := svc.s.remove(ctx, "Delete", o, expected, true)
	if err != nil {
		return nil, err
	}
	return &api.TombstoneResp{PositionOption: &api.TombstoneResp_Position_{Position: &api.TombstoneResp_Position{
		CommitPosition: r.pos, PreparePosition: r.pos,
	}}}, nil
}

// remove soft-deletes (truncates) or tombstones a stream. A tombstone is a
// $streamDeleted record in $all; a soft delete is a $metadata record in the
// metastream $$name, as EventStoreDB writes them.
func (s *Server) remove(ctx context.Context, op string, o deleteOptions, expected expectation, hard bool) (*record, error) {
	name := string(o.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return nil, invalidArg("stream name is required")
	}
	setTrailer := func(md metadata.MD) { _ = grpc.SetTrailer(ctx, md) }
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	if st != nil && st.tombstoned {
		return nil, streamDeletedErr(setTrailer, name)
	}
	cur := st.current()
	if !expected.satisfied(cur) {
		return nil, wrongVersionErr(setTrailer, op, name, expected, cur)
	}
	if hard {
		st = s.streamLocked(name)
		st.tombstoned = true
		return s.writeLocked(name, nil, []proposal{{
			id: uuid.New(), eventType: "$streamDeleted", contentType: "application/json", data: []byte("{}"),
		}}), nil
	}
	if st != nil {
		st.truncateBefore = uint64(cur + 1)
	}
	meta := s.streamLocked("$$" + name)
	return s.writeLocked("$$"+name, meta, []proposal{{
		id: uuid.New(), eventType: "$metadata", contentType: "application/json",
		data: fmt.Appendf(nil, `{"$tb":%d}`, cur+1),
	}}), nil
}

// ---- Read: streams, $all, subscriptions ----

type readFilter struct {
	onType   bool
	re       *regexp.Regexp
	prefixes []string
	interval int // checkpoint every interval scanned records
}

func (f *readFilter) match(r *record) bool {
	if f == nil {
		return true
	}
	subject := r.stream
	if f.onType {
		subject = r.eventType
	}
	if f.re != nil {
		return f.re.MatchString(subject)
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return false
}

func compileFilter(fo *api.ReadReq_Options_FilterOptions) (*readFilter, error) {
	if fo == nil {
		return nil, nil
	}
	f := &readFilter{}
	var expr *api.ReadReq_Options_FilterOptions_Expression
	switch x := fo.GetFilter().(type) {
	case *api.ReadReq_Options_FilterOptions_EventType:
		f.onType, expr = true, x.EventType
	case *api.ReadReq_Options_FilterOptions_StreamIdentifier:
		expr = x.StreamIdentifier
	default:
		return nil, invalidArg("a filter needs an event type or stream expression")
	}
	if expr.GetRegex() != "" {
		re, err := regexp.Compile(expr.GetRegex())
		if err != nil {
			return nil, invalidArg("filter regex: %v", err)
		}
		f.re = re
	} else {
		f.prefixes = expr.GetPrefix()
	}
	window := 32 // EventStoreDB's default max search window
	if m := fo.GetMax(); m > 0 {
		window = int(m)
	}
	f.interval = window * max(1, int(fo.GetCheckpointIntervalMultiplier()))
	return f, nil
}

func (svc *streamsService) Read(req *api.ReadReq, srv api.Streams_ReadServer) error {
	o := req.GetOptions()
	if o == nil {
		return invalidArg("read options are required")
	}
	filter, err := compileFilter(o.GetFilter())
	if err != nil {
		return err
	}
	r := reader{s: svc.s, srv: srv, asString: o.GetUuidOption().GetString_() != nil}
	_, subscribe := o.GetCountOption().(*api.ReadReq_Options_Subscription)
	backwards := o.GetReadDirection() == api.ReadReq_Options_Backwards
	switch so := o.GetStreamOption().(type) {
	case *api.ReadReq_Options_Stream:
		if subscribe {
			return r.subscribeStream(so.Stream)
		}
		return r.readStream(so.Stream, backwards, o.GetCount())
	case *api.ReadReq_Options_All:
		if subscribe {
			if backwards {
				return invalidArg("subscriptions read forwards")
			}
			return r.subscribeAll(so.All, filter)
		}
		return r.readAll(so.All, backwards, o.GetCount(), filter)
	}
	return invalidArg("a read needs a stream or $all")
}

type reader struct {
	s        *Server
	srv      api.Streams_ReadServer
	asString bool
}

func (r reader) sendEvent(rec *record) error {
	id := &shared.UUID{}
	if r.asString {
		id.Value = &shared.UUID_String_{String_: rec.id.String()}
	} else {
		id = toProtoUUID(rec.id)
	}
	return r.srv.Send(&api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               id,
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(rec.stream)},
			StreamRevision:   rec.revision,
			PreparePosition:  rec.pos,
			CommitPosition:   rec.pos,
			Metadata: map[string]string{
				"type":         rec.eventType,
				"content-type": rec.contentType,
				"created":      fmt.Sprint(rec.created),
			},
			CustomMetadata: rec.custom,
			Data:           rec.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: rec.pos},
	}}})
}

func (r reader) sendCheckpoint(rec *record) error {
	return r.srv.Send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
		CommitPosition: rec.pos, PreparePosition: rec.pos,
	}}})
}

func (r reader) readStream(o *api.ReadReq_Options_StreamOptions, backwards bool, count uint64) error {
	name := string(o.GetStreamIdentifier().GetStreamName())
	s := r.s
	s.mu.Lock()
	st := s.streams[name]
	if st != nil && st.tombstoned {
		s.mu.Unlock()
		return streamDeletedErr(r.srv.SetTrailer, name)
	}
	if !st.exists() || st.truncateBefore >= uint64(len(st.events)) {
		s.mu.Unlock()
		return r.srv.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)},
		}}})
	}
	first, last := st.truncateBefore, uint64(len(st.events)-1)
	var out []*record
	switch ro := o.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Start:
		if backwards {
			out = collect(st.events, 0, 0, true, first)
		} else {
			out = collect(st.events, first, last, false, first)
		}
	case *api.ReadReq_Options_StreamOptions_End:
		if backwards {
			out = collect(st.events, last, last, true, first)
		}
	case *api.ReadReq_Options_StreamOptions_Revision:
		from := max(ro.Revision, first)
		if backwards {
			out = collect(st.events, min(ro.Revision, last), last, true, first)
		} else if from <= last {
			out = collect(st.events, from, last, false, first)
		}
	}
	s.mu.Unlock()
	for i, rec := range out {
		if uint64(i) >= count {
			break
		}
		if err := r.sendEvent(rec); err != nil {
			return err
		}
	}
	return nil
}

// collect returns events[from..last] forwards, or events[from] down to
// events[floor] backwards.
func collect(events []*record, from, last uint64, backwards bool, floor uint64) []*record {
	if !backwards {
		return append([]*record(nil), events[from:last+1]...)
	}
	var out []*record
	for i := int64(from); i >= int64(floor); i-- {
		out = append(out, events[i])
	}
	return out
}

// indexAt is the index of the first record of $all strictly after p
// (inclusive when inclusive is set). s.mu is held.
func (s *Server) indexAt(p *api.ReadReq_Options_Position, inclusive bool) int {
	lo, hi := 0, len(s.log)
	for lo < hi {
		mid := (lo + hi) / 2
		c := comparePos(s.log[mid].pos, p)
		if c < 0 || (c == 0 && !inclusive) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func comparePos(pos uint64, p *api.ReadReq_Options_Position) int {
	switch {
	case pos < p.GetCommitPosition():
		return -1
	case pos > p.GetCommitPosition():
		return 1
	case pos < p.GetPreparePosition():
		return -1
	case pos > p.GetPreparePosition():
		return 1
	}
	return 0
}

// readAll reads $all from a position: forwards it includes the event at the
// position, backwards it starts strictly before it (EventStoreDB's rules).
func (r reader) readAll(o *api.ReadReq_Options_AllOptions, backwards bool, count uint64, filter *readFilter) error {
	s := r.s
	s.mu.Lock()
	log := s.log
	var idx int // forwards: first index; backwards: one past the first index
	switch ao := o.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		idx = 0
	case *api.ReadReq_Options_AllOptions_End:
		idx = len(log)
	case *api.ReadReq_Options_AllOptions_Position:
		idx = s.indexAt(ao.Position, true)
	}
	s.mu.Unlock()
	var sent uint64
	step := func(rec *record) (bool, error) {
		if !filter.match(rec) {
			return true, nil
		}
		if err := r.sendEvent(rec); err != nil {
			return false, err
		}
		sent++
		return sent < count, nil
	}
	if count == 0 {
		return nil
	}
	if backwards {
		for i := idx - 1; i >= 0; i-- {
			if more, err := step(log[i]); err != nil || !more {
				return err
			}
		}
		return nil
	}
	for i := idx; i < len(log); i++ {
		if more, err := step(log[i]); err != nil || !more {
			return err
		}
	}
	return nil
}

func (r reader) confirm() error {
	return r.srv.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{
		SubscriptionId: uuid.NewString(),
	}}})
}

func (r reader) caughtUp() error {
	return r.srv.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}})
}

var errDropped = status.Error(codes.Unavailable, "esdbserver: subscription dropped")

// subscribeAll serves a catch-up subscription to $all: a confirmation, the
// events strictly after the start position, a caught-up message, then live
// events. A filtered subscription also gets a checkpoint every
// filter.interval scanned records and when it catches up.
func (r reader) subscribeAll(o *api.ReadReq_Options_AllOptions, filter *readFilter) error {
	s := r.s
	sub := s.register()
	defer s.unregister(sub)
	ctx := r.srv.Context()
	if err := r.confirm(); err != nil {
		return err
	}
	s.mu.Lock()
	var idx int
	switch ao := o.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		idx = 0
	case *api.ReadReq_Options_AllOptions_End:
		idx = len(s.log)
	case *api.ReadReq_Options_AllOptions_Position:
		idx = s.indexAt(ao.Position, false)
	}
	s.mu.Unlock()

	var (
		scanned      int
		lastScanned  *record
		checkpointed = true
		caughtUp     bool
	)
	for {
		s.mu.Lock()
		batch := s.log[idx:min(idx+256, len(s.log))]
		wake := s.changed
		s.mu.Unlock()
		if len(batch) == 0 {
			if filter != nil && !checkpointed && lastScanned != nil {
				if err := r.sendCheckpoint(lastScanned); err != nil {
					return err
				}
				checkpointed = true
			}
			if !caughtUp {
				if err := r.caughtUp(); err != nil {
					return err
				}
				caughtUp = true
			}
			select {
			case <-wake:
				continue
			case <-sub.drop:
				return errDropped
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			}
		}
		for _, rec := range batch {
			select {
			case <-sub.drop:
				return errDropped
			default:
			}
			idx++
			if filter.match(rec) {
				if err := r.sendEvent(rec); err != nil {
					return err
				}
			}
			scanned++
			lastScanned, checkpointed = rec, false
			if filter != nil && scanned%filter.interval == 0 {
				if err := r.sendCheckpoint(rec); err != nil {
					return err
				}
				checkpointed = true
			}
		}
	}
}

// subscribeStream serves a catch-up subscription to one stream, strictly
// after the start revision.
func (r reader) subscribeStream(o *api.ReadReq_Options_StreamOptions) error {
	s := r.s
	name := string(o.GetStreamIdentifier().GetStreamName())
	sub := s.register()
	defer s.unregister(sub)
	ctx := r.srv.Context()
	if err := r.confirm(); err != nil {
		return err
	}
	s.mu.Lock()
	var next uint64
	switch ro := o.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Start:
		next = 0
	case *api.ReadReq_Options_StreamOptions_End:
		next = uint64(s.streams[name].current() + 1)
	case *api.ReadReq_Options_StreamOptions_Revision:
		next = ro.Revision + 1
	}
	s.mu.Unlock()
	caughtUp := false
	for {
		s.mu.Lock()
		stm := s.streams[name]
		deleted := stm != nil && stm.tombstoned
		var batch []*record
		if stm != nil && next < uint64(len(stm.events)) {
			batch = stm.events[max(next, stm.truncateBefore):]
		}
		wake := s.changed
		s.mu.Unlock()
		if len(batch) == 0 {
			if deleted {
				return streamDeletedErr(r.srv.SetTrailer, name)
			}
			if !caughtUp {
				if err := r.caughtUp(); err != nil {
					return err
				}
				caughtUp = true
			}
			select {
			case <-wake:
				continue
			case <-sub.drop:
				return errDropped
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			}
		}
		for _, rec := range batch {
			if err := r.sendEvent(rec); err != nil {
				return err
			}
			next = rec.revision + 1
		}
	}
}

// ---- UUIDs as the client encodes them ----

func toProtoUUID(id uuid.UUID) *shared.UUID {
	var most, least uint64
	for i := 0; i < 8; i++ {
		most = most<<8 | uint64(id[i])
		least = least<<8 | uint64(id[8+i])
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits: int64(most), LeastSignificantBits: int64(least),
	}}}
}

func fromProtoUUID(u *shared.UUID) (uuid.UUID, error) {
	if s := u.GetStructured(); s != nil {
		var id uuid.UUID
		most, least := uint64(s.GetMostSignificantBits()), uint64(s.GetLeastSignificantBits())
		for i := 7; i >= 0; i-- {
			id[i], id[8+i] = byte(most), byte(least)
			most, least = most>>8, least>>8
		}
		return id, nil
	}
	if str := u.GetString_(); str != "" {
		return uuid.Parse(str)
	}
	return uuid.Nil, errors.New("missing")
}
