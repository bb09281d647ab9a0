package external_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/authledger/authledger/auth/external"
	"github.com/authledger/authledger/test/extauthserver"
)

// BenchmarkLoginAt50ms logs in against the test provider answering after
// a fixed 50 ms, and reports the client's overhead over those 50 ms (the
// request, TLS, JSON, the policies) at p50 and p99. The provider reuses
// its signed tokens, so that its RSA signatures, made on the same two
// cores here, are not counted as the client's:
//
//	go test -run '^$' -bench Login -benchtime 400x ./auth/external/
func BenchmarkLoginAt50ms(b *testing.B) {
	// par × GOMAXPROCS logins in flight.
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("parallel=%d", par), func(b *testing.B) { benchLogin(b, par) })
	}
}

func benchLogin(b *testing.B, par int) {
	p := extauthserver.Start(b, extauthserver.Config{Users: []extauthserver.User{ada}, ReuseTokens: true})
	p.SetFault(extauthserver.Fault{Latency: 50 * time.Millisecond})
	c, err := external.NewClient(fast(p.ClientConfig()))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	// Warm the pool: one connection (one TLS handshake) per login in
	// flight, as a running server has.
	var wg sync.WaitGroup
	for range par * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			if _, err := c.Login(context.Background(), ada.Email, ada.Password); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	lat := make(chan time.Duration, b.N)
	b.SetParallelism(par)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			if _, err := c.Login(context.Background(), ada.Email, ada.Password); err != nil {
				b.Error(err)
				return
			}
			lat <- time.Since(start) - 50*time.Millisecond
		}
	})
	b.StopTimer()
	report(b, lat, "overhead")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
}

// BenchmarkFastFailWithTheBreakerOpen measures a login refused by the
// open breaker, the provider unreached:
//
//	go test -run '^$' -bench FastFail -benchtime 10000x ./auth/external/
func BenchmarkFastFailWithTheBreakerOpen(b *testing.B) {
	p := extauthserver.Start(b, extauthserver.Config{Users: []extauthserver.User{ada}})
	p.SetFault(extauthserver.Fault{Status: http.StatusServiceUnavailable})
	c, err := external.NewClient(fast(p.ClientConfig()))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for c.BreakerState() != external.BreakerOpen {
		_, _ = c.Login(context.Background(), ada.Email, ada.Password)
	}
	hits := p.Hits(extauthserver.Login)
	lat := make(chan time.Duration, b.N)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			_, err := c.Login(context.Background(), ada.Email, ada.Password)
			lat <- time.Since(start)
			if external.RetryAfter(err) == 0 {
				b.Errorf("err = %v", err)
				return
			}
		}
	})
	b.StopTimer()
	if p.Hits(extauthserver.Login) != hits {
		b.Fatal("the open breaker let calls through")
	}
	report(b, lat, "latency")
}

func report(b *testing.B, lat chan time.Duration, what string) {
	close(lat)
	var d []time.Duration
	for l := range lat {
		d = append(d, l)
	}
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	q := func(f float64) float64 { return float64(d[int(f*float64(len(d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), what+"-p50-ms")
	b.ReportMetric(q(0.99), what+"-p99-ms")
}
