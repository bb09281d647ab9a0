package ratelimit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/authledger/authledger/httpapi/ratelimit"
)

func TestBucketsPerKey(t *testing.T) {
	t.Parallel()
	l, err := ratelimit.New(ratelimit.Config{PerSecond: 1, Burst: 3})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	for i := range 3 {
		if ok, _ := l.Allow("a", now); !ok {
			t.Fatalf("request %d of a full bucket refused", i+1)
		}
	}
	ok, wait := l.Allow("a", now)
	if ok || wait != time.Second {
		t.Fatalf("fourth at once: %v, wait %s", ok, wait)
	}
	// A refusal takes nothing: the token is there a second later.
	if ok, _ := l.Allow("a", now.Add(time.Second)); !ok {
		t.Fatal("refill refused")
	}
	if ok, _ := l.Allow("b", now); !ok {
		t.Fatal("another key shares a's bucket")
	}
}

// Memory is bounded: past MaxKeys the least recently used bucket goes,
// and its key starts full again (never refused for being forgotten).
func TestMaxKeys(t *testing.T) {
	t.Parallel()
	l, err := ratelimit.New(ratelimit.Config{PerSecond: 0.001, Burst: 1, MaxKeys: 10})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	for i := range 1000 {
		l.Allow(fmt.Sprint(i), now)
	}
	if n := l.Keys(); n != 10 {
		t.Fatalf("%d buckets held, want 10", n)
	}
	if ok, _ := l.Allow("0", now); !ok {
		t.Fatal("an evicted key is refused")
	}
	if ok, _ := l.Allow("999", now); ok {
		t.Fatal("a recent key's empty bucket was forgotten")
	}
}

func TestOffAndInvalid(t *testing.T) {
	t.Parallel()
	l, err := ratelimit.New(ratelimit.Config{})
	if err != nil || l != nil {
		t.Fatalf("PerSecond 0: %v %v", l, err)
	}
	if ok, _ := l.Allow("x", time.Now()); !ok {
		t.Fatal("a nil limiter refused")
	}
	if _, err := ratelimit.New(ratelimit.Config{PerSecond: 1, Burst: 0, MaxKeys: -1}); err == nil {
		t.Fatal("burst 0 and negative max keys accepted")
	}
}
