package auth

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// fakeClock is a fablab.Clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var testThrottle = ThrottleConfig{Free: 3, Delay: time.Second, MaxDelay: 8 * time.Second, Memory: time.Hour, PerAddr: 10, Window: 10 * time.Minute}

// attempt begins an attempt and finishes it with ok; it returns the wait
// of a refused attempt (0 when it was let through).
func attempt(t *testing.T, th *Throttle, account, addr string, ok bool) time.Duration {
	t.Helper()
	finish, wait, err := th.Begin(account, addr)
	if err != nil {
		if fablab.ErrorCode(err) != fablab.ETOOMANY || wait <= 0 {
			t.Fatalf("refusal %v with wait %s: want too_many_attempts and a positive wait", err, wait)
		}
		return wait
	}
	if wait != 0 {
		t.Fatalf("admitted with wait %s", wait)
	}
	finish(ok)
	return 0
}

// TestThrottleSlowsDownPair: after Free failures in a row, each attempt of
// the pair waits a delay that doubles up to MaxDelay; waiting it out lets
// exactly one more attempt through.
func TestThrottleSlowsDownPair(t *testing.T) {
	c := newFakeClock()
	th := NewThrottle(c.Now, testThrottle)
	for i := range 3 {
		if w := attempt(t, th, "admin", "198.51.100.1", false); w != 0 {
			t.Fatalf("failure %d refused (wait %s): the first 3 are free", i+1, w)
		}
	}
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		if w := attempt(t, th, "admin", "198.51.100.1", false); w != want {
			t.Fatalf("wait %s, want %s", w, want)
		}
		if w := th.RetryAfter("admin", "198.51.100.1"); w != want {
			t.Fatalf("RetryAfter %s, want %s", w, want)
		}
		c.Advance(want - time.Millisecond)
		if w := attempt(t, th, "admin", "198.51.100.1", false); w != time.Millisecond {
			t.Fatalf("1 ms early: wait %s, want 1ms", w)
		}
		c.Advance(time.Millisecond)
		if w := attempt(t, th, "admin", "198.51.100.1", false); w != 0 {
			t.Fatalf("after the delay: still refused for %s", w)
		}
	}
}

// TestThrottleOtherAddressUnaffected: guessing an account's password from
// one address never keeps its owner out from another; a right password
// from the owner's address does not clear the guesser's pair either.
func TestThrottleOtherAddressUnaffected(t *testing.T) {
	c := newFakeClock()
	th := NewThrottle(c.Now, testThrottle)
	for range 8 {
		attempt(t, th, "admin", "203.0.113.66", false)
		c.Advance(100 * time.Millisecond)
	}
	if w := th.RetryAfter("admin", "203.0.113.66"); w == 0 {
		t.Fatal("the guessing address is not slowed down")
	}
	if w := attempt(t, th, "admin", "192.0.2.10", true); w != 0 {
		t.Fatalf("the admin's own address waits %s", w)
	}
	if w := th.RetryAfter("admin", "203.0.113.66"); w == 0 {
		t.Fatal("the admin's login cleared the guesser's delay")
	}
	if w := attempt(t, th, "bob", "203.0.113.66", true); w != 0 {
		t.Fatalf("another account from the guessing address waits %s", w)
	}
}

// TestThrottleSuccessForgetsPair: a right password clears the pair's failures.
func TestThrottleSuccessForgetsPair(t *testing.T) {
	c := newFakeClock()
	th := NewThrottle(c.Now, testThrottle)
	for range 2 {
		attempt(t, th, "alice", "192.0.2.1", false)
	}
	attempt(t, th, "alice", "192.0.2.1", true)
	for i := range 3 {
		if w := attempt(t, th, "alice", "192.0.2.1", false); w != 0 {
			t.Fatalf("failure %d after a success waits %s: the count was not reset", i+1, w)
		}
	}
	if w := th.RetryAfter("alice", "192.0.2.1"); w != time.Second {
		t.Fatalf("RetryAfter %s, want 1s", w)
	}
}

// TestThrottleMemory: a pair's failures are forgotten Memory after the last.
func TestThrottleMemory(t *testing.T) {
	c := newFakeClock()
	th := NewThrottle(c.Now, testThrottle)
	for range 6 {
		c.Advance(th.RetryAfter("alice", "192.0.2.1"))
		attempt(t, th, "alice", "192.0.2.1", false)
	}
	c.Advance(testThrottle.Memory - time.Second)
	if pairs, _ := th.Len(); pairs != 1 {
		t.Fatalf("%d pairs before Memory passed, want 1", pairs)
	}
	if w := attempt(t, th, "alice", "192.0.2.1", false); w != 0 {
		t.Fatalf("refused for %s", w)
	}
	if w := th.RetryAfter("alice", "192.0.2.1"); w != 8*time.Second {
		t.Fatalf("the delays were reset before Memory passed: wait %s, want 8s", w)
	}
	c.Advance(testThrottle.Memory)
	if pairs, _ := th.Len(); pairs != 0 {
		t.Fatalf("%d pairs after Memory passed, want 0", pairs)
	}
}

// TestThrottlePerAddress: PerAddr failures from one address over many
// accounts block that address (not others) until the oldest leaves Window.
func TestThrottlePerAddress(t *testing.T) {
	c := newFakeClock()
	th := NewThrottle(c.Now, testThrottle)
	for i := range 10 {
		if w := attempt(t, th, fmt.Sprintf("user%d", i), "198.51.100.7", false); w != 0 {
			t.Fatalf("failure %d refused", i+1)
		}
		c.Advance(time.Second)
	}
	if w := attempt(t, th, "someone", "198.51.100.7", true); w != testThrottle.Window-10*time.Second {
		t.Fatalf("wait %s, want %s", w, testThrottle.Window-10*time.Second)
	}
	if w := attempt(t, th, "someone", "198.51.100.8", true); w != 0 {
		t.Fatalf("another address waits %s", w)
	}
	c.Advance(testThrottle.Window - 10*time.Second)
	if w := attempt(t, th, "someone", "198.51.100.7", true); w != 0 {
		t.Fatalf("after the window: wait %s", w)
	}
}

// TestThrottleRefusalMessage says how long to wait, rounded up.
func TestThrottleRefusalMessage(t *testing.T) {
	c := newFakeClock()
	th := NewThrottle(c.Now, testThrottle)
	for range 4 {
		th.Begin("alice", "192.0.2.1")
	}
	_, _, err := th.Begin("alice", "192.0.2.1")
	if msg := fablab.ErrorMessage(err); !strings.Contains(msg, "try again in 1 second") || strings.Contains(msg, "seconds") {
		t.Fatalf("message %q", msg)
	}
	c.Advance(time.Second)
	th.Begin("alice", "192.0.2.1")
	c.Advance(500 * time.Millisecond)
	_, _, err = th.Begin("alice", "192.0.2.1")
	if msg := fablab.ErrorMessage(err); !strings.Contains(msg, "try again in 2 seconds") {
		t.Fatalf("message %q, want 2 seconds (1.5 s rounded up)", msg)
	}
}

// TestThrottleMemoryBound: a flood of distinct accounts and addresses keeps
// at most MaxKeys entries per table.
func TestThrottleMemoryBound(t *testing.T) {
	c := newFakeClock()
	cfg := testThrottle
	cfg.MaxKeys = 50
	th := NewThrottle(c.Now, cfg)
	for i := range 1000 {
		attempt(t, th, fmt.Sprintf("user%d", i), fmt.Sprintf("10.0.%d.%d", i/256, i%256), false)
	}
	pairs, addrs := th.Len()
	if pairs != 50 || addrs != 50 {
		t.Fatalf("%d pairs and %d addresses remembered, want 50 each", pairs, addrs)
	}
	// The newest are the ones kept.
	attempt(t, th, "user999", "10.0.3.231", false)
	attempt(t, th, "user999", "10.0.3.231", false)
	if w := th.RetryAfter("user999", "10.0.3.231"); w != time.Second {
		t.Fatalf("the newest pair was evicted: wait %s", w)
	}
}

// TestThrottleBeginConcurrent: parallel attempts of one pair at one instant
// cannot all pass while their passwords are checked: exactly Free do.
func TestThrottleBeginConcurrent(t *testing.T) {
	c := newFakeClock()
	th := NewThrottle(c.Now, testThrottle)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		admitted int
		finishes []func(bool)
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			finish, _, err := th.Begin("admin", "203.0.113.9")
			if err == nil {
				mu.Lock()
				admitted++
				finishes = append(finishes, finish)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if admitted != testThrottle.Free {
		t.Fatalf("%d parallel attempts admitted, want %d", admitted, testThrottle.Free)
	}
	for _, f := range finishes {
		f(false)
		f(true) // a second call is ignored
	}
	if w := th.RetryAfter("admin", "203.0.113.9"); w != time.Second {
		t.Fatalf("wait %s after %d failures, want 1s", w, testThrottle.Free)
	}
}
