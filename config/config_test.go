package config_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/authledger/authledger/config"
)

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(lookup(map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1/db"}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := config.Config{
		DatabaseURL:       "postgres://x@127.0.0.1/db",
		Listen:            "127.0.0.1:8080",
		PublicURL:         "http://127.0.0.1:8080",
		EventStore:        "postgres",
		DataDir:           ".data",
		LogLevel:          slog.LevelInfo,
		LogFormat:         "json",
		ConsistencyWait:   2 * time.Second,
		MigrateOnStart:    true,
		StartupTimeout:    30 * time.Second,
		ShutdownTimeout:   15 * time.Second,
		ReadHeaderTimeout: 10 * time.Second,
	}
	if c.DatabaseURL != want.DatabaseURL || c.Listen != want.Listen || c.PublicURL != want.PublicURL ||
		c.EventStore != want.EventStore || c.DataDir != want.DataDir || c.LogLevel != want.LogLevel ||
		c.LogFormat != want.LogFormat || c.ConsistencyWait != want.ConsistencyWait ||
		c.MigrateOnStart != want.MigrateOnStart || c.StartupTimeout != want.StartupTimeout ||
		c.ShutdownTimeout != want.ShutdownTimeout || c.ReadHeaderTimeout != want.ReadHeaderTimeout ||
		len(c.TrustedProxies) != 0 || c.ESDBURL != "" {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestOverrides(t *testing.T) {
	t.Parallel()
	c, err := config.Load(lookup(map[string]string{
		"DATABASE_URL":                "postgres://db/a",
		"AUTHLEDGER_LISTEN":           "0.0.0.0:9000",
		"AUTHLEDGER_EVENT_STORE":      "ESDB",
		"ESDB_URL":                    "esdb://127.0.0.1:2113?tls=false",
		"AUTHLEDGER_LOG_LEVEL":        "debug",
		"AUTHLEDGER_LOG_FORMAT":       "text",
		"AUTHLEDGER_CONSISTENCY_WAIT": "500ms",
		"AUTHLEDGER_MIGRATE_ON_START": "false",
		"AUTHLEDGER_TRUSTED_PROXIES":  " 10.0.0.0/8, 192.168.1.1 ,",
		"AUTHLEDGER_DATA_DIR":         "/var/lib/authledger",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.PublicURL != "http://localhost:9000" {
		t.Errorf("PublicURL for an unspecified listen host = %q", c.PublicURL)
	}
	if c.EventStore != config.EventStoreESDB || c.LogLevel != slog.LevelDebug || c.LogFormat != "text" ||
		c.ConsistencyWait != 500*time.Millisecond || c.MigrateOnStart || c.DataDir != "/var/lib/authledger" {
		t.Errorf("overrides not applied: %+v", c)
	}
	if strings.Join(c.TrustedProxies, "|") != "10.0.0.0/8|192.168.1.1" {
		t.Errorf("TrustedProxies = %q", c.TrustedProxies)
	}
}

func TestPublicURLTrailingSlashIsDropped(t *testing.T) {
	t.Parallel()
	c, err := config.Load(lookup(map[string]string{"DATABASE_URL": "postgres://db/a", "AUTHLEDGER_PUBLIC_URL": "https://id.example.com/"}))
	if err != nil || c.PublicURL != "https://id.example.com" {
		t.Errorf("PublicURL = %q, err %v", c.PublicURL, err)
	}
}

func TestDefaultPublicURL(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		":8080":          "http://localhost:8080",
		"0.0.0.0:80":     "http://localhost:80",
		"[::]:8080":      "http://localhost:8080",
		"[::1]:8080":     "http://[::1]:8080",
		"example.com:1":  "http://example.com:1",
	}
	for listen, want := range cases {
		if got := config.DefaultPublicURL(listen); got != want {
			t.Errorf("DefaultPublicURL(%q) = %q, want %q", listen, got, want)
		}
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	t.Parallel()
	_, err := config.Load(lookup(map[string]string{
		"AUTHLEDGER_LISTEN":          "nope",
		"AUTHLEDGER_PUBLIC_URL":      "ftp://x",
		"AUTHLEDGER_EVENT_STORE":     "esdb",
		"AUTHLEDGER_LOG_FORMAT":      "xml",
		"AUTHLEDGER_TRUSTED_PROXIES": "not-an-ip",
	}))
	if err == nil {
		t.Fatal("Load accepted a broken environment")
	}
	for _, name := range []string{"DATABASE_URL", "AUTHLEDGER_LISTEN", "AUTHLEDGER_PUBLIC_URL", "ESDB_URL", "AUTHLEDGER_LOG_FORMAT", "AUTHLEDGER_TRUSTED_PROXIES"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}

func TestParseErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	_, err := config.Load(lookup(map[string]string{
		"DATABASE_URL":                "postgres://db/a",
		"AUTHLEDGER_LOG_LEVEL":        "loud",
		"AUTHLEDGER_CONSISTENCY_WAIT": "2",
		"AUTHLEDGER_MIGRATE_ON_START": "maybe",
	}))
	for _, name := range []string{"AUTHLEDGER_LOG_LEVEL", "AUTHLEDGER_CONSISTENCY_WAIT", "AUTHLEDGER_MIGRATE_ON_START"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

func TestValidateESDB(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://db/a", "AUTHLEDGER_EVENT_STORE": "esdb"}
	if _, err := config.Load(lookup(base)); err == nil || !strings.Contains(err.Error(), "ESDB_URL: required") {
		t.Errorf("esdb without ESDB_URL: %v", err)
	}
	base["ESDB_URL"] = "http://127.0.0.1:2113"
	if _, err := config.Load(lookup(base)); err == nil || !strings.Contains(err.Error(), "esdb://") {
		t.Errorf("esdb with an http URL: %v", err)
	}
	base["AUTHLEDGER_EVENT_STORE"] = "mongo"
	if _, err := config.Load(lookup(base)); err == nil || !strings.Contains(err.Error(), "AUTHLEDGER_EVENT_STORE") {
		t.Errorf("unknown store: %v", err)
	}
}

func TestUsageListsEveryVariableWithItsDefault(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := config.Usage(&b); err != nil {
		t.Fatal(err)
	}
	md := config.Markdown()
	seen := map[string]bool{}
	for _, v := range config.Variables() {
		if seen[v.Name] {
			t.Errorf("%s declared twice", v.Name)
		}
		seen[v.Name] = true
		if v.Description == "" {
			t.Errorf("%s has no description", v.Name)
		}
		line := ""
		for l := range strings.SplitSeq(b.String(), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), v.Name+" ") {
				line = l
			}
		}
		if line == "" || (v.ShownDefault() != "" && !strings.Contains(line, v.ShownDefault())) {
			t.Errorf("usage line for %s = %q, want its default %q", v.Name, line, v.ShownDefault())
		}
		if !strings.Contains(md, "| `"+v.Name+"` |") {
			t.Errorf("markdown lacks %s", v.Name)
		}
	}
}

func TestHTTPLimits(t *testing.T) {
	t.Parallel()
	c, err := config.Load(lookup(map[string]string{"DATABASE_URL": "postgres://db/a"}))
	if err != nil {
		t.Fatal(err)
	}
	want := config.HTTP{ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute,
		StreamTimeout: 10 * time.Minute, UploadTimeout: 10 * time.Minute, MaxConnections: 1024,
		AuthMaxBodyBytes: 8192, JSONMaxBytes: 65536}
	if c.HTTP != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", c.HTTP, want)
	}
	_, err = config.Load(lookup(map[string]string{
		"DATABASE_URL":                   "postgres://db/a",
		"AUTHLEDGER_READ_HEADER_TIMEOUT": "20s",
		"AUTHLEDGER_READ_TIMEOUT":        "15s",
		"AUTHLEDGER_WRITE_TIMEOUT":       "1s",
		"AUTHLEDGER_IDLE_TIMEOUT":        "0s",
		"AUTHLEDGER_STREAM_TIMEOUT":      "-1s",
		"AUTHLEDGER_UPLOAD_TIMEOUT":      "0s",
		"AUTHLEDGER_MAX_CONNECTIONS":     "0",
		"AUTHLEDGER_AUTH_MAX_BODY_BYTES": "10",
		"AUTHLEDGER_JSON_MAX_BYTES":      "-5",
	}))
	for _, name := range []string{"AUTHLEDGER_READ_TIMEOUT: must be at least AUTHLEDGER_READ_HEADER_TIMEOUT",
		"AUTHLEDGER_WRITE_TIMEOUT: must exceed AUTHLEDGER_CONSISTENCY_WAIT", "AUTHLEDGER_IDLE_TIMEOUT", "AUTHLEDGER_STREAM_TIMEOUT",
		"AUTHLEDGER_UPLOAD_TIMEOUT", "AUTHLEDGER_MAX_CONNECTIONS", "AUTHLEDGER_AUTH_MAX_BODY_BYTES", "AUTHLEDGER_JSON_MAX_BYTES"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

func TestConsoleAndCORSOrigins(t *testing.T) {
	t.Parallel()
	c, err := config.Load(lookup(map[string]string{"DATABASE_URL": "postgres://db/a"}))
	if err != nil || !c.Console || len(c.CORSOrigins) != 0 {
		t.Fatalf("defaults: console %v, CORS %v, err %v", c.Console, c.CORSOrigins, err)
	}
	c, err = config.Load(lookup(map[string]string{"DATABASE_URL": "postgres://db/a", "AUTHLEDGER_CONSOLE": "false",
		"AUTHLEDGER_CORS_ORIGINS": " https://app.example/ , http://localhost:5173"}))
	if err != nil || c.Console || strings.Join(c.CORSOrigins, " ") != "https://app.example http://localhost:5173" {
		t.Fatalf("set: console %v, CORS %v, err %v", c.Console, c.CORSOrigins, err)
	}
	for _, bad := range []string{"*", "app.example", "https://app.example/path", "ftp://app.example"} {
		if _, err := config.Load(lookup(map[string]string{"DATABASE_URL": "postgres://db/a", "AUTHLEDGER_CORS_ORIGINS": bad})); err == nil || !strings.Contains(err.Error(), "AUTHLEDGER_CORS_ORIGINS") {
			t.Errorf("origin %q: %v, want refused", bad, err)
		}
	}
}
