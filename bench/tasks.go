package bench

// tasks.go is the `tasks` section of `authledger-bench` (issue 6):
// `authledger serve` as its own process, in a scratch database, measured
// over loopback HTTP as a client sees it.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"math"
	mrand "math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/authledger/authledger/bench/loadgen"
	"github.com/authledger/authledger/bench/tasksbench"
	"github.com/authledger/authledger/httpapi"
)

// Goals of issue 6, printed beside the rows (never asserted: the figures
// depend on the machine).
const (
	downloadGoal   = 0.50 // downloads/s over task reads/s (no audit event)
	historyP99Goal = 20 * time.Millisecond
)

// TasksConfig bounds the tasks section. Zero fields take the defaults of
// withDefaults.
type TasksConfig struct {
	ServerConfig
	// RowDuration is how long each row runs (default 3s); every worker
	// completes at least one request, so a row is never empty.
	RowDuration time.Duration
	// Concurrency of the upload, download and read rows (default 8, as
	// issue 6 asks); as many users upload, one per worker, so that the
	// per-user quota stream is not what is measured.
	Concurrency int
	// HistoryTasks is how many tasks the history user has (default
	// 100,000), seeded into the read models with tasksbench.Seed.
	HistoryTasks int
	// ImageBytes is the size of the uploaded PNG (default 100 KiB).
	ImageBytes int
}

func (c TasksConfig) withDefaults() TasksConfig {
	if c.RowDuration <= 0 {
		c.RowDuration = 3 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.HistoryTasks <= 0 {
		c.HistoryTasks = 100_000
	}
	if c.ImageBytes <= 0 {
		c.ImageBytes = 100 << 10
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	return c
}

// benchTasks runs the tasks section and prints its table to w.
// Tasks runs the section and prints its table to w.
func Tasks(ctx context.Context, w io.Writer, cfg TasksConfig) error {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	svc, err := startBenchService(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bench: tasks: %w", err)
	}
	defer svc.stop()

	img, err := NoisePNG(cfg.ImageBytes)
	if err != nil {
		return fmt.Errorf("bench: tasks: %w", err)
	}
	uploaders := make([]benchUser, cfg.Concurrency)
	for i := range uploaders {
		if uploaders[i], err = svc.newUser(ctx, fmt.Sprintf("uploader-%d@bench.example", i)); err != nil {
			return err
		}
	}
	historian, err := svc.newUser(ctx, "historian@bench.example")
	if err != nil {
		return err
	}
	// The tasks projection must have set up its tables before the seed
	// writes into them: a history read waiting for the registration says
	// it has (the runner creates them before it projects anything).
	if err := svc.expect(ctx, http.MethodGet, "/v1/history", historian, nil, http.StatusOK, nil); err != nil {
		return fmt.Errorf("bench: tasks: wait for the tasks projection: %w", err)
	}
	pool, err := pgxpool.New(ctx, svc.dbURL)
	if err != nil {
		return fmt.Errorf("bench: tasks: %w", err)
	}
	_, err = tasksbench.Seed(ctx, pool, historian.id, cfg.HistoryTasks)
	pool.Close()
	if err != nil {
		return fmt.Errorf("bench: tasks: %w", err)
	}

	rows := []tasksRow{}
	c := cfg.Concurrency

	// Task creation: one 100 KiB PNG per task, each made unique by a text
	// chunk (the blob store is content-addressed: identical bytes would
	// be stored once).
	last := make([]uploaded, c)
	var seq atomic.Uint64
	create, err := loadgen.Run(ctx, c, cfg.RowDuration, func(ctx context.Context, worker, _ int) error {
		u, err := svc.upload(ctx, uploaders[worker], UniquePNG(img, seq.Add(1)))
		if err == nil {
			last[worker] = u
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("bench: tasks: upload: %w", err)
	}
	rows = append(rows, tasksRow{name: fmt.Sprintf("task creation, %s PNG", kib(len(img))), c: c, r: create})

	// Downloads beside reads of the same task without an audit event.
	files := make([]taskFile, c)
	for i := range files {
		if files[i], err = svc.firstFile(ctx, uploaders[i], last[i]); err != nil {
			return fmt.Errorf("bench: tasks: %w", err)
		}
	}
	rs, err := loadgen.Interleaved(ctx, c, cfg.RowDuration, loadgen.Rounds(cfg.RowDuration),
		func(ctx context.Context, worker, _ int) error {
			f := files[worker]
			return svc.expect(ctx, http.MethodGet, "/v1/tasks/"+f.taskID, uploaders[worker].withoutToken(), nil, http.StatusOK, nil)
		},
		func(ctx context.Context, worker, _ int) error {
			f := files[worker]
			var n int64
			err := svc.expect(ctx, http.MethodGet, "/v1/tasks/"+f.taskID+"/files/"+f.fileID, uploaders[worker].withoutToken(), nil, http.StatusOK,
				func(body io.Reader) (err error) { n, err = io.Copy(io.Discard, body); return err })
			if err == nil && n != f.size {
				err = fmt.Errorf("download sent %d bytes of %d", n, f.size)
			}
			return err
		})
	if err != nil {
		return fmt.Errorf("bench: tasks: read and download: %w", err)
	}
	read, download := rs[0], rs[1]
	rows = append(rows,
		tasksRow{name: "GET /v1/tasks/{id} (baseline)", c: c, r: read},
		tasksRow{name: "file download (+ file_accessed event)", c: c, r: download, cells: ratioGoal(download, read, downloadGoal)})

	// History pages of the seeded user: the first page, and a mix of
	// filters (status, the last month, a file-name search, page 50).
	h := historian.withoutToken()
	mixed := []string{"?status=failed", "?from=" + url.QueryEscape(time.Now().UTC().AddDate(0, -1, 0).Format(time.RFC3339)),
		"?q=document-4242-", "?page=50"}
	for _, hc := range []int{1, c} {
		first, err := loadgen.Run(ctx, hc, cfg.RowDuration, func(ctx context.Context, _, _ int) error {
			return svc.expect(ctx, http.MethodGet, "/v1/history", h, nil, http.StatusOK, drain)
		})
		if err != nil {
			return fmt.Errorf("bench: tasks: history: %w", err)
		}
		filtered, err := loadgen.Run(ctx, hc, cfg.RowDuration, func(ctx context.Context, worker, i int) error {
			return svc.expect(ctx, http.MethodGet, "/v1/history"+mixed[(worker+i)%len(mixed)], h, nil, http.StatusOK, drain)
		})
		if err != nil {
			return fmt.Errorf("bench: tasks: history: %w", err)
		}
		rows = append(rows,
			tasksRow{name: "GET /v1/history, first page", c: hc, r: first, cells: p99Goal(first, historyP99Goal)},
			tasksRow{name: "GET /v1/history, filters/page 50", c: hc, r: filtered, cells: p99Goal(filtered, historyP99Goal)})
	}

	// The console's history page over the same history (ADR 0036): the
	// page a signed-in browser gets first, whole.
	consoleRows, weight, err := consoleHistory(ctx, svc, cfg, "historian@bench.example", []int{1, c})
	if err != nil {
		return err
	}
	rows = append(rows, consoleRows...)

	// Exports of the whole history, one at a time; every export must
	// hold every row.
	for _, format := range []string{"csv", "json"} {
		body := map[string]any{"format": format, "filters": map[string]any{}}
		var exported atomic.Int64
		r, err := loadgen.Run(ctx, 1, cfg.RowDuration, func(ctx context.Context, _, _ int) error {
			var lines int
			err := svc.expect(ctx, http.MethodPost, "/v1/history/export", h, body, http.StatusOK, func(body io.Reader) (err error) {
				lines, err = countLines(body)
				return err
			})
			if err != nil {
				return err
			}
			// CSV: a header line, then a line per row. JSON: "[", a line per
			// row, "]" (the seeded names and errors hold no line break).
			rows := lines - 1
			if format == "json" {
				rows = lines - 2
			}
			if rows != cfg.HistoryTasks {
				return fmt.Errorf("%s export holds %d rows, want %d", format, rows, cfg.HistoryTasks)
			}
			exported.Add(int64(rows))
			return nil
		})
		if err != nil {
			return fmt.Errorf("bench: tasks: export: %w", err)
		}
		rows = append(rows, tasksRow{name: "POST /v1/history/export, " + format, c: 1, r: r, rowsPerOp: cfg.HistoryTasks})
	}

	fmt.Fprintf(w, "\n## Tasks and files (`authledger serve` as its own process, over loopback HTTP; %d users; PostgreSQL event store; no OCR worker while measuring)\n", c)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "row\tconcurrency\tops\tops/s\tp50\tp99\tvs baseline\tgoal\t")
	for _, r := range rows {
		ops, perSec := r.r.Ops, r.r.PerSecond()
		if r.rowsPerOp > 0 {
			ops *= r.rowsPerOp
			perSec *= float64(r.rowsPerOp)
		}
		cells := r.cells
		if cells == "" {
			cells = "\t\t"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%s\n", r.name, r.c, ops, perSec, benchMS(r.r.P50), benchMS(r.r.P99), cells)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nHistory and export: one user with %d tasks seeded into the read models (tasksbench.Seed). "+
		"Export rows: ops and ops/s count rows; p50/p99 are the time of one whole export.\n", cfg.HistoryTasks)
	fmt.Fprintf(w, "Console history page (the first of %d tasks, 20 rows): %s of HTML, %s of static files without cache (%s); the page's time is the server's, "+
		"from the request to its last byte, with its in-process API calls (the profile, the page of the history, whose total is the badge's count).\n",
		cfg.HistoryTasks, kib(int(weight.html)), kib(int(weight.assets)), strings.Join(weight.assetNames, ", "))
	return nil
}

// tasksRow is one printed row; cells are its "vs baseline" and "goal"
// cells, tab-terminated.
type tasksRow struct {
	name      string
	c         int
	r         loadgen.Result
	cells     string
	rowsPerOp int
}

// benchService is the service under measurement and a client of it.
type benchService struct {
	*serveProcess
	base   string
	client *http.Client
}

func startBenchService(ctx context.Context, cfg TasksConfig) (*benchService, error) {
	p, err := startServe(ctx, cfg.ServerConfig, []string{
		"AUTHLEDGER_USER_RATE_LIMIT_PER_SECOND=0",
		"AUTHLEDGER_WRITE_RATE_LIMIT_PER_SECOND=0",
		"AUTHLEDGER_UPLOAD_RATE_LIMIT_PER_SECOND=0",
		// Every upload stays queued: the quotas must not refuse them.
		"AUTHLEDGER_TASK_MAX_ACTIVE=100000000",
		"AUTHLEDGER_TASK_MAX_STORED_BYTES=" + strconv.FormatInt(1<<50, 10),
	})
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	stop := p.stop
	p.stop = func() { transport.CloseIdleConnections(); stop() }
	return &benchService{
		serveProcess: p,
		base:         "http://" + p.addr,
		client:       &http.Client{Timeout: 5 * time.Minute, Transport: transport},
	}, nil
}

// benchUser is an account logged in over HTTP. consistency is the token
// of its last write, sent once so the next read sees it.
type benchUser struct {
	id          uuid.UUID
	access      string
	consistency string
}

func (u benchUser) withoutToken() benchUser { u.consistency = ""; return u }

const benchUserPassword = "a long enough bench secret"

// newUser registers and logs in an account.
func (s *benchService) newUser(ctx context.Context, email string) (benchUser, error) {
	var reg struct {
		UserID uuid.UUID `json:"user_id"`
	}
	var u benchUser
	err := s.do(ctx, http.MethodPost, "/v1/auth/register", benchUser{}, jsonBody(map[string]string{
		"email": email, "password": benchUserPassword, "display_name": "Bench",
	}), "application/json", http.StatusCreated, func(r *http.Response) error {
		u.consistency = r.Header.Get(httpapi.HeaderConsistencyToken)
		return json.NewDecoder(r.Body).Decode(&reg)
	})
	if err != nil {
		return u, fmt.Errorf("bench: register %s: %w", email, err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = s.do(ctx, http.MethodPost, "/v1/auth/login", benchUser{}, jsonBody(map[string]string{"email": email, "password": benchUserPassword}),
		"application/json", http.StatusOK, func(r *http.Response) error { return json.NewDecoder(r.Body).Decode(&tok) })
	if err != nil {
		return u, fmt.Errorf("bench: log in %s: %w", email, err)
	}
	u.id, u.access = reg.UserID, tok.AccessToken
	return u, nil
}

// uploaded is a created task and the consistency token of its creation.
type uploaded struct {
	taskID      string
	consistency string
}

// upload creates a task with one file over multipart, as a client does.
func (s *benchService) upload(ctx context.Context, u benchUser, content []byte) (uploaded, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("files", "scan.png")
	if err != nil {
		return uploaded{}, err
	}
	if _, err := fw.Write(content); err != nil {
		return uploaded{}, err
	}
	if err := mw.Close(); err != nil {
		return uploaded{}, err
	}
	var res struct {
		TaskID string `json:"task_id"`
	}
	var out uploaded
	err = s.do(ctx, http.MethodPost, "/v1/tasks", u, &body, mw.FormDataContentType(), http.StatusAccepted, func(r *http.Response) error {
		out.consistency = r.Header.Get(httpapi.HeaderConsistencyToken)
		return json.NewDecoder(r.Body).Decode(&res)
	})
	out.taskID = res.TaskID
	return out, err
}

// taskFile names one stored file of a task.
type taskFile struct {
	taskID, fileID string
	size           int64
}

// firstFile reads the task (waiting for its creation to be projected) and
// returns its first file.
func (s *benchService) firstFile(ctx context.Context, u benchUser, t uploaded) (taskFile, error) {
	if t.taskID == "" {
		return taskFile{}, errors.New("a worker created no task")
	}
	u.consistency = t.consistency
	var got struct {
		Files []struct {
			FileID string `json:"file_id"`
			Size   int64  `json:"size"`
		} `json:"files"`
	}
	err := s.expect(ctx, http.MethodGet, "/v1/tasks/"+t.taskID, u, nil, http.StatusOK, func(r io.Reader) error { return json.NewDecoder(r).Decode(&got) })
	if err != nil {
		return taskFile{}, err
	}
	if len(got.Files) == 0 {
		return taskFile{}, fmt.Errorf("task %s lists no file", t.taskID)
	}
	return taskFile{taskID: t.taskID, fileID: got.Files[0].FileID, size: got.Files[0].Size}, nil
}

// expect sends a request with an optional JSON body and fails unless the
// answer has status want; read (default: drain) consumes the body.
func (s *benchService) expect(ctx context.Context, method, path string, u benchUser, body any, want int, read func(io.Reader) error) error {
	var rd io.Reader
	ct := ""
	if body != nil {
		rd, ct = jsonBody(body), "application/json"
	}
	if read == nil {
		read = drain
	}
	return s.do(ctx, method, path, u, rd, ct, want, func(r *http.Response) error { return read(r.Body) })
}

func (s *benchService) do(ctx context.Context, method, path string, u benchUser, body io.Reader, contentType string, want int, read func(*http.Response) error) error {
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if u.access != "" {
		req.Header.Set("Authorization", "Bearer "+u.access)
	}
	if u.consistency != "" {
		req.Header.Set(httpapi.HeaderConsistencyToken, u.consistency)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return fmt.Errorf("%s %s answered %d, want %d: %s", method, path, resp.StatusCode, want, msg)
	}
	if err := read(resp); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

func jsonBody(v any) io.Reader {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings and the like: cannot fail
	}
	return bytes.NewReader(b)
}

func drain(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }

// countLines reads r to the end and counts its line breaks.
func countLines(r io.Reader) (int, error) {
	buf := make([]byte, 64<<10)
	n := 0
	for {
		k, err := r.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// NoisePNG renders a grey image of random pixels whose PNG encoding is
// about size bytes: noise does not compress, so the file is as large as
// the upload the row is meant to measure, and it sniffs as PNG.
func NoisePNG(size int) ([]byte, error) {
	const width = 256
	rows := max(1, size/(width+1)) // each row is a filter byte and its pixels
	img := image.NewGray(image.Rect(0, 0, width, rows))
	rng := mrand.New(mrand.NewPCG(uint64(size), 6)) //nolint:gosec // benchmark pixels, not a secret
	for i := range img.Pix {
		img.Pix[i] = byte(rng.Uint32())
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// UniquePNG is img with a tEXt chunk holding n inserted before its IEND
// chunk (the last 12 bytes): the same picture in a file of its own.
func UniquePNG(img []byte, n uint64) []byte {
	data := fmt.Appendf(nil, "Comment\x00authledger bench upload %d", n)
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(data))) //nolint:gosec // a few dozen bytes
	chunk = append(chunk, "tEXt"...)
	chunk = append(chunk, data...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	iend := len(img) - 12
	out := make([]byte, 0, len(img)+len(chunk))
	out = append(out, img[:iend]...)
	out = append(out, chunk...)
	return append(out, img[iend:]...)
}

func kib(n int) string {
	if n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}

// ratioGoal renders "vs baseline" and "goal" for a row measured against a
// baseline, rounded down so that a ratio shown as the goal has met it.
func ratioGoal(r, base loadgen.Result, goal float64) string {
	ratio := r.PerSecond() / base.PerSecond()
	return fmt.Sprintf("%.0f%%\t≥ %.0f%%: %s\t", math.Floor(100*ratio), 100*goal, verdict(ratio >= goal))
}

// p99Goal renders the goal cell of a latency goal.
func p99Goal(r loadgen.Result, goal time.Duration) string {
	return fmt.Sprintf("\tp99 < %s: %s\t", benchMS(goal), verdict(r.P99 < goal))
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}

func benchMS(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
