package agent

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/sluice-net/sluice/host"
)

// scriptedLinks is a link source whose subscriptions fail or succeed as the
// test says; each successful one gets a fresh channel the test can close.
type scriptedLinks struct {
	mu    sync.Mutex
	fails int // the next fails Subscribe calls fail
	calls int
	ch    chan string
	keep  func(host.LinkEvent) bool
}

func (s *scriptedLinks) Subscribe(_ context.Context, keep func(host.LinkEvent) bool) (<-chan string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fails > 0 {
		s.fails--
		return nil, errors.New("operation not permitted")
	}
	s.keep = keep
	s.ch = make(chan string, 16)
	return s.ch, nil
}

func (s *scriptedLinks) current() chan string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *scriptedLinks) subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// watchLinks runs a linkWatch over links until the test ends, and returns
// its trigger count.
func watchLinks(t *testing.T, links *scriptedLinks, keep func(host.LinkEvent) bool) *atomic.Int64 {
	t.Helper()
	var triggers atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w := linkWatch{links: links, keep: keep, quiet: 50 * time.Millisecond, trigger: func() { triggers.Add(1) }, log: testr.New(t)}
	go func() {
		defer close(done)
		_ = w.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &triggers
}

func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Events within the quiet period make one sync; the watch subscribes with
// the filter it was given.
func TestLinkWatchCoalesces(t *testing.T) {
	links := &scriptedLinks{}
	keep := func(host.LinkEvent) bool { return true }
	triggers := watchLinks(t, links, keep)
	waitUntil(t, "subscribed", time.Second, func() bool { return links.current() != nil })
	if links.keep == nil {
		t.Fatal("subscribed without the filter")
	}
	for range 10 {
		links.current() <- "ens1f0"
	}
	waitUntil(t, "a sync", time.Second, func() bool { return triggers.Load() > 0 })
	time.Sleep(200 * time.Millisecond)
	if got := triggers.Load(); got != 1 {
		t.Errorf("%d syncs for a burst of 10 events, want 1", got)
	}
}

// A subscription that ends (ENOBUFS: events were lost) is made again and
// followed by exactly one sync.
func TestLinkWatchResubscribesAfterOverflow(t *testing.T) {
	links := &scriptedLinks{}
	triggers := watchLinks(t, links, nil)
	waitUntil(t, "subscribed", time.Second, func() bool { return links.current() != nil })
	close(links.current())
	waitUntil(t, "subscribed again", linkRetry+time.Second, func() bool { return links.subscriptions() == 2 })
	waitUntil(t, "a resync", time.Second, func() bool { return triggers.Load() > 0 })
	time.Sleep(200 * time.Millisecond)
	if got := triggers.Load(); got != 1 {
		t.Errorf("%d syncs after the overflow, want 1", got)
	}
	// The new subscription works.
	links.current() <- "ens1f0"
	waitUntil(t, "a sync on the new subscription", time.Second, func() bool { return triggers.Load() == 2 })
}

// A subscription that cannot be made is retried; once it is, one sync
// covers what changed meanwhile.
func TestLinkWatchRetriesSubscribing(t *testing.T) {
	links := &scriptedLinks{fails: 1}
	triggers := watchLinks(t, links, nil)
	waitUntil(t, "subscribed after a failure", linkRetry+time.Second, func() bool { return links.current() != nil })
	waitUntil(t, "a resync", time.Second, func() bool { return triggers.Load() == 1 })
}
