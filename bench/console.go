package bench

// console.go measures the web console's history page over the seeded
// history: the server's time to answer the whole page (two in-process API
// calls for the header and one for the table, then the template) and the
// page's weight, as a browser without cache loads it.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/authledger/authledger/bench/loadgen"
)

// consoleWeight is what one first view of the history page downloads.
type consoleWeight struct {
	html, assets int64
	assetNames   []string
}

var consoleCSRF = regexp.MustCompile(`name="csrf" value="([A-Z2-7]+)"`)

// consoleClient signs email in through the console's form and returns a
// client holding its session cookie.
func (s *benchService) consoleClient(ctx context.Context, email string) (*http.Client, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	c := &http.Client{Jar: jar, Timeout: s.client.Timeout, Transport: s.client.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page, _, err := consoleGet(ctx, c, s.base+"/signin")
	if err != nil {
		return nil, err
	}
	m := consoleCSRF.FindStringSubmatch(page)
	if m == nil {
		return nil, errors.New("the sign-in page has no CSRF token")
	}
	form := url.Values{"csrf": {m[1]}, "email": {email}, "password": {benchUserPassword}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/signin", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.base)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/history") {
		return nil, fmt.Errorf("console sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	return c, nil
}

func consoleGet(ctx context.Context, c *http.Client, u string) (string, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("GET %s: %d", u, resp.StatusCode)
	}
	return string(b), int64(len(b)), nil
}

// consoleHistory measures GET /history (the whole page) for the seeded
// user at each concurrency, checking every answer is the real page (the
// display name, a full first page of the seeded total), and weighs it.
func consoleHistory(ctx context.Context, svc *benchService, cfg TasksConfig, email string, concurrencies []int) ([]tasksRow, consoleWeight, error) {
	var weight consoleWeight
	client, err := svc.consoleClient(ctx, email)
	if err != nil {
		return nil, weight, fmt.Errorf("bench: tasks: console: %w", err)
	}
	caption := strconv.Itoa(cfg.HistoryTasks) + " tasks; page 1 of "
	check := func(page string) error {
		if !strings.Contains(page, `id="display-name">Bench<`) || !strings.Contains(page, caption) || strings.Count(page, `class="task-link"`) != 20 {
			return errors.New("the history page is not the seeded user's first page")
		}
		return nil
	}
	page, n, err := consoleGet(ctx, client, svc.base+"/history")
	if err != nil {
		return nil, weight, err
	}
	if err := check(page); err != nil {
		return nil, weight, fmt.Errorf("bench: tasks: console: %w", err)
	}
	weight.html = n
	for _, m := range regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(page, -1) {
		_, size, err := consoleGet(ctx, client, svc.base+m[1])
		if err != nil {
			return nil, weight, err
		}
		weight.assets += size
		weight.assetNames = append(weight.assetNames, fmt.Sprintf("%s %s", strings.TrimPrefix(m[1], "/static/"), kib(int(size))))
	}
	var rows []tasksRow
	for _, c := range concurrencies {
		r, err := loadgen.Run(ctx, c, cfg.RowDuration, func(ctx context.Context, _, _ int) error {
			page, _, err := consoleGet(ctx, client, svc.base+"/history")
			if err == nil {
				err = check(page)
			}
			return err
		})
		if err != nil {
			return nil, weight, fmt.Errorf("bench: tasks: console history: %w", err)
		}
		rows = append(rows, tasksRow{name: "console GET /history (whole page)", c: c, r: r, cells: p99Goal(r, historyP99Goal)})
	}
	return rows, weight, nil
}
