package vault_test

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v4"

	"github.com/authledger/authledger/auth/vault"
	"github.com/authledger/authledger/test/extauthserver"
)

// alertRules is the part of deploy/alerts.yml the check reads.
type alertRules struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var (
	metricName = regexp.MustCompile(`authledger_[a-z_]+`)
	selector   = regexp.MustCompile(`(authledger_[a-z_]+)\{([^}]*)\}`)
	matcher    = regexp.MustCompile(`(\w+)(=~|!~|=|!=)"([^"]*)"`)
	fqName     = regexp.MustCompile(`fqName: "([^"]+)"`)
)

// deploy/alerts.yml names only series serve exports, with label values
// they take: each metric is one the client or the refresher describes, and
// every exact label value in a selector (op="login", state="open",
// outcome=~"failed|gave_up") is one a series of it carries after real
// calls to the test provider, or one the refresher documents. A renamed
// metric or label value fails here, not silently in production.
func TestAlertRulesNameExportedSeries(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("deploy/alerts.yml: %v", err)
	}

	// A client that has logged in once and been refused once, and a
	// refresher: their series are what serve exports.
	f := newFixture(t, extauthserver.Config{})
	c := f.client
	if _, err := c.Login(t.Context(), ada.Email, ada.Password); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(t.Context(), ada.Email, "wrong"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	r, err := vault.NewRefresher(f.vault(t), vault.ClientRefresh(c), vault.RefresherConfig{
		Buffer: time.Minute, OnGiveUp: func(context.Context, vault.GiveUp) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, r)

	described := map[string]string{} // name -> help
	descs := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(descs); r.Describe(descs); close(descs) }()
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			described[m[1]] = d.String()
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]map[string][]string{} // metric -> label -> values seen
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if values[f.GetName()] == nil {
					values[f.GetName()] = map[string][]string{}
				}
				values[f.GetName()][l.GetName()] = append(values[f.GetName()][l.GetName()], l.GetValue())
			}
		}
	}

	n := 0
	for _, g := range rules.Groups {
		for _, rule := range g.Rules {
			n++
			if rule.Annotations["runbook"] == "" {
				t.Errorf("%s: no runbook annotation", rule.Alert)
			}
			for _, name := range metricName.FindAllString(rule.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
				if described[base] == "" {
					t.Errorf("%s: %s is not a metric serve exports", rule.Alert, name)
				}
			}
			for _, sel := range selector.FindAllStringSubmatch(rule.Expr, -1) {
				base := strings.TrimSuffix(sel[1], "_bucket")
				for _, m := range matcher.FindAllStringSubmatch(sel[2], -1) {
					label, want := m[1], m[3]
					for v := range strings.SplitSeq(want, "|") {
						seen := slices.Contains(values[base][label], v)
						// The refresher's outcomes appear only after a pass;
						// its help text lists each one.
						documented := regexp.MustCompile(`\b` + regexp.QuoteMeta(v) + `\b`).MatchString(described[base])
						if !seen && !documented {
							t.Errorf("%s: %s{%s=%q}: no series has that value (seen %v)", rule.Alert, base, label, v, values[base][label])
						}
					}
				}
			}
		}
	}
	if n < 3 {
		t.Fatalf("deploy/alerts.yml holds %d rules, want the failure rate, the open breaker and refresh failures", n)
	}
}
