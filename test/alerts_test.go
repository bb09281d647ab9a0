package architecture_test

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/auth/keys"
	"github.com/authledger/authledger/auth/vault"
)

// The alert rules name only metrics the service exposes: an expression
// about a renamed metric would never fire. Every metric name in
// deploy/alerts.yml must be one that the external client or the vault's
// refresher (the collectors serve registers with external auth on)
// describes.
func TestAlertRulesNameRealMetrics(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../deploy/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	client, err := external.NewClient(external.Config{URL: "https://auth.example.com", Issuer: "https://login.example.com", Audience: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// The pool never connects: the refresher is only described.
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	mk, err := keys.NewMasterKey(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(vault.Config{Pool: pool, MasterKey: mk})
	if err != nil {
		t.Fatal(err)
	}
	refresher, err := vault.NewRefresher(v, vault.ClientRefresh(client), vault.RefresherConfig{Buffer: time.Minute,
		OnGiveUp: func(context.Context, vault.GiveUp) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	fqName := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for _, c := range []prometheus.Collector{client, refresher} {
		descs := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(descs); close(descs) }()
		for d := range descs {
			if m := fqName.FindStringSubmatch(d.String()); m != nil {
				known[m[1]] = true
			}
		}
	}
	names := regexp.MustCompile(`authledger_[a-z_]+`).FindAllString(string(raw), -1)
	if len(names) < 4 || len(known) < 4 {
		t.Fatalf("%d metric names in deploy/alerts.yml, %d described: the check below would prove nothing", len(names), len(known))
	}
	for _, name := range names {
		if !known[name] {
			t.Errorf("deploy/alerts.yml names %s, which the service does not expose (it has %v)", name, known)
		}
	}
}
