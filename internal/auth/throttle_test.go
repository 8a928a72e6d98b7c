package auth

import (
	"errors"
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

const (
	testPerAccount = 3
	testPerAddr    = 5
	testWindow     = 10 * time.Minute
)

// failN records n failures for account from addr, advancing the clock by
// step after each.
func failN(th *Throttle, c *fakeClock, n int, account, addr string, step time.Duration) {
	for range n {
		th.Failure(account, addr)
		c.Advance(step)
	}
}

func TestThrottle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		setup         func(th *Throttle, c *fakeClock)
		account, addr string
		wantRetry     time.Duration // 0: Allow must pass
	}{
		{
			name:    "fresh",
			setup:   func(*Throttle, *fakeClock) {},
			account: "alice", addr: "192.0.2.1",
		},
		{
			name: "account under limit",
			setup: func(th *Throttle, c *fakeClock) {
				th.Failure("alice", "192.0.2.1")
				th.Failure("alice", "192.0.2.2")
			},
			account: "alice", addr: "192.0.2.3",
		},
		{
			name: "account at limit from many addresses",
			setup: func(th *Throttle, c *fakeClock) {
				for i := range testPerAccount {
					th.Failure("alice", fmt.Sprintf("192.0.2.%d", i))
				}
			},
			account: "alice", addr: "198.51.100.9",
			wantRetry: testWindow,
		},
		{
			name: "account limit does not block other accounts",
			setup: func(th *Throttle, c *fakeClock) {
				for i := range testPerAccount {
					th.Failure("alice", fmt.Sprintf("192.0.2.%d", i))
				}
			},
			account: "bob", addr: "198.51.100.9",
		},
		{
			name: "address at limit across accounts",
			setup: func(th *Throttle, c *fakeClock) {
				for i := range testPerAddr {
					th.Failure(fmt.Sprintf("user%d", i), "192.0.2.1")
				}
			},
			account: "newcomer", addr: "192.0.2.1",
			wantRetry: testWindow,
		},
		{
			name: "address limit does not block other addresses",
			setup: func(th *Throttle, c *fakeClock) {
				for i := range testPerAddr {
					th.Failure(fmt.Sprintf("user%d", i), "192.0.2.1")
				}
			},
			account: "newcomer", addr: "192.0.2.2",
		},
		{
			name: "window expired",
			setup: func(th *Throttle, c *fakeClock) {
				failN(th, c, testPerAccount, "alice", "192.0.2.1", 0)
				c.Advance(testWindow)
			},
			account: "alice", addr: "192.0.2.1",
		},
		{
			name: "one nanosecond before expiry",
			setup: func(th *Throttle, c *fakeClock) {
				failN(th, c, testPerAccount, "alice", "192.0.2.1", 0)
				c.Advance(testWindow - time.Nanosecond)
			},
			account: "alice", addr: "192.0.2.1",
			wantRetry: time.Nanosecond,
		},
		{
			name: "sliding window waits for the oldest failure only",
			setup: func(th *Throttle, c *fakeClock) {
				failN(th, c, testPerAccount, "alice", "192.0.2.1", 2*time.Minute) // at 0, 2, 4 min
				c.Advance(-time.Minute)                                           // now = 5 min
			},
			account: "alice", addr: "192.0.2.1",
			wantRetry: 5 * time.Minute, // the failure at 0 leaves the window at 10 min
		},
		{
			name: "sliding window after the oldest left",
			setup: func(th *Throttle, c *fakeClock) {
				failN(th, c, testPerAccount, "alice", "192.0.2.1", 2*time.Minute) // at 0, 2, 4 min
				c.Advance(4 * time.Minute)                                        // now = 10 min
			},
			account: "alice", addr: "192.0.2.1",
		},
		{
			name: "more failures than the limit",
			setup: func(th *Throttle, c *fakeClock) {
				failN(th, c, testPerAccount+2, "alice", "192.0.2.1", time.Minute) // at 0..4 min
				c.Advance(-time.Minute)                                           // now = 4 min
			},
			account: "alice", addr: "192.0.2.1",
			wantRetry: 8 * time.Minute, // until the failure at 2 min leaves: 12 − 4
		},
		{
			name: "the longer of account and address wins",
			setup: func(th *Throttle, c *fakeClock) {
				failN(th, c, testPerAccount, "alice", "203.0.113.7", 0) // account blocked until 10 min
				c.Advance(3 * time.Minute)
				for i := range testPerAddr { // address blocked until 13 min
					th.Failure(fmt.Sprintf("user%d", i), "192.0.2.1")
				}
			},
			account: "alice", addr: "192.0.2.1",
			wantRetry: testWindow,
		},
		{
			name: "success clears the account",
			setup: func(th *Throttle, c *fakeClock) {
				failN(th, c, testPerAccount, "alice", "192.0.2.1", 0)
				th.Success("alice")
			},
			account: "alice", addr: "192.0.2.1",
		},
		{
			name: "success does not clear the address",
			setup: func(th *Throttle, c *fakeClock) {
				failN(th, c, testPerAddr, "alice", "192.0.2.1", 0)
				th.Success("alice")
			},
			account: "bob", addr: "192.0.2.1",
			wantRetry: testWindow,
		},
		{
			name: "success clears only that account",
			setup: func(th *Throttle, c *fakeClock) {
				failN(th, c, testPerAccount, "alice", "192.0.2.1", 0)
				failN(th, c, testPerAccount, "bob", "192.0.2.2", 0)
				th.Success("alice")
			},
			account: "bob", addr: "198.51.100.9",
			wantRetry: testWindow,
		},
		{
			name: "success for an unknown account is harmless",
			setup: func(th *Throttle, c *fakeClock) {
				th.Success("nobody")
			},
			account: "nobody", addr: "192.0.2.1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newFakeClock()
			th := NewThrottle(c.Now, testPerAccount, testPerAddr, testWindow)
			tc.setup(th, c)
			if got := th.RetryAfter(tc.account, tc.addr); got != tc.wantRetry {
				t.Errorf("RetryAfter = %v, want %v", got, tc.wantRetry)
			}
			err := th.Allow(tc.account, tc.addr)
			if tc.wantRetry == 0 {
				if err != nil {
					t.Errorf("Allow = %v, want nil", err)
				}
				return
			}
			var fe *fablab.Error
			if !errors.As(err, &fe) || fe.Code != fablab.ETOOMANY {
				t.Fatalf("Allow = %v, want a *fablab.Error with code %q", err, fablab.ETOOMANY)
			}
		})
	}
}

func TestThrottleMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		elapsed time.Duration // since the failures, within the 10 min window
		want    string
	}{
		{"whole seconds", 0, "try again in 600 seconds"},
		{"rounded up", 500 * time.Millisecond, "try again in 600 seconds"},
		{"just over a second", testWindow - 1001*time.Millisecond, "try again in 2 seconds"},
		{"exactly one second", testWindow - time.Second, "try again in 1 second"},
		{"under a second", testWindow - time.Nanosecond, "try again in 1 second"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newFakeClock()
			th := NewThrottle(c.Now, testPerAccount, testPerAddr, testWindow)
			failN(th, c, testPerAccount, "alice", "192.0.2.1", 0)
			c.Advance(tc.elapsed)
			msg := fablab.ErrorMessage(th.Allow("alice", "192.0.2.1"))
			if !strings.Contains(msg, tc.want) {
				t.Errorf("message %q does not contain %q", msg, tc.want)
			}
		})
	}
}

func TestThrottleDisabledLimits(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	th := NewThrottle(c.Now, 0, -1, testWindow)
	failN(th, c, 100, "alice", "192.0.2.1", 0)
	if err := th.Allow("alice", "192.0.2.1"); err != nil {
		t.Errorf("Allow with limits disabled = %v", err)
	}
	if n := len(th.accounts.keys) + len(th.addrs.keys); n != 0 {
		t.Errorf("disabled limits still track %d keys", n)
	}
}

func TestNewThrottle(t *testing.T) {
	t.Parallel()
	t.Run("nil clock is the system clock", func(t *testing.T) {
		th := NewThrottle(nil, 1, 1, time.Hour)
		th.Failure("alice", "192.0.2.1")
		if d := th.RetryAfter("alice", "192.0.2.1"); d <= 0 || d > time.Hour {
			t.Errorf("RetryAfter = %v, want within (0, 1h]", d)
		}
	})
	for _, w := range []time.Duration{0, -time.Second} {
		t.Run(fmt.Sprintf("window %v panics", w), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("NewThrottle did not panic")
				}
			}()
			NewThrottle(newFakeClock().Now, 1, 1, w)
		})
	}
}

// Memory stays bounded: stale keys are pruned, each key keeps at most limit
// times, and the number of keys is capped by evicting the stalest.
func TestThrottleMemoryBound(t *testing.T) {
	t.Parallel()
	t.Run("prunes keys outside the window", func(t *testing.T) {
		t.Parallel()
		c := newFakeClock()
		th := NewThrottle(c.Now, testPerAccount, testPerAddr, testWindow)
		for i := range 50 {
			th.Failure(fmt.Sprintf("user%d", i), fmt.Sprintf("192.0.2.%d", i))
		}
		c.Advance(testWindow)
		th.Failure("fresh", "198.51.100.1")
		if a, b := len(th.accounts.keys), len(th.addrs.keys); a != 1 || b != 1 {
			t.Errorf("after the window: %d accounts and %d addresses tracked, want 1 and 1", a, b)
		}
		if a, b := th.accounts.order.Len(), th.addrs.order.Len(); a != 1 || b != 1 {
			t.Errorf("order lists hold %d and %d, want 1 and 1", a, b)
		}
	})
	t.Run("keeps at most limit times per key", func(t *testing.T) {
		t.Parallel()
		c := newFakeClock()
		th := NewThrottle(c.Now, testPerAccount, testPerAddr, testWindow)
		failN(th, c, 1000, "alice", "192.0.2.1", time.Millisecond)
		f := th.accounts.keys["alice"].Value.(*failures)
		g := th.addrs.keys["192.0.2.1"].Value.(*failures)
		if len(f.times) != testPerAccount || len(g.times) != testPerAddr {
			t.Errorf("kept %d and %d times, want %d and %d", len(f.times), len(g.times), testPerAccount, testPerAddr)
		}
	})
	t.Run("caps keys by dropping the stalest", func(t *testing.T) {
		t.Parallel()
		c := newFakeClock()
		th := NewThrottle(c.Now, testPerAccount, testPerAddr, testWindow)
		th.accounts.maxKeys = 3
		for _, a := range []string{"u1", "u2", "u3"} {
			th.Failure(a, "192.0.2.1")
			c.Advance(time.Second)
		}
		th.Failure("u1", "192.0.2.1") // u1 is now the most recent; u2 the stalest
		c.Advance(time.Second)
		th.Failure("u4", "192.0.2.1")
		c.Advance(time.Second)
		th.Failure("u5", "192.0.2.1")
		if n := len(th.accounts.keys); n != 3 {
			t.Fatalf("%d accounts tracked, want the cap of 3", n)
		}
		for _, tc := range []struct {
			account string
			tracked bool
		}{{"u1", true}, {"u2", false}, {"u3", false}, {"u4", true}, {"u5", true}} {
			if _, ok := th.accounts.keys[tc.account]; ok != tc.tracked {
				t.Errorf("account %s tracked = %v, want %v", tc.account, ok, tc.tracked)
			}
		}
	})
	if maxTrackedKeys != 100_000 {
		t.Errorf("maxTrackedKeys = %d, want 100000", maxTrackedKeys)
	}
}

// Run under -race: every method from many goroutines while the clock moves.
func TestThrottleConcurrent(t *testing.T) {
	t.Parallel()
	c := newFakeClock()
	th := NewThrottle(c.Now, testPerAccount, testPerAddr, testWindow)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				account := fmt.Sprintf("user%d", (g*7+i)%20)
				addr := fmt.Sprintf("192.0.2.%d", i%10)
				switch i % 4 {
				case 0, 1:
					th.Failure(account, addr)
				case 2:
					_ = th.Allow(account, addr)
					_ = th.RetryAfter(account, addr)
				case 3:
					th.Success(account)
				}
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			c.Advance(time.Second)
		}
	})
	wg.Wait()

	// The throttle is still consistent afterwards.
	if a, o := len(th.accounts.keys), th.accounts.order.Len(); a != o || a > 20 {
		t.Errorf("accounts: map %d, list %d entries; want equal and ≤ 20", a, o)
	}
	c.Advance(testWindow)
	if err := th.Allow("user0", "192.0.2.0"); err != nil {
		t.Errorf("after the window, Allow = %v", err)
	}
	failN(th, c, testPerAddr, "x", "203.0.113.1", 0)
	if err := th.Allow("y", "203.0.113.1"); fablab.ErrorCode(err) != fablab.ETOOMANY {
		t.Errorf("Allow = %v, want %s", err, fablab.ETOOMANY)
	}
}

func TestThrottleBegin(t *testing.T) {
	t.Run("attempts count while they run", func(t *testing.T) {
		c := newFakeClock()
		th := NewThrottle(c.Now, testPerAccount, testPerAddr, testWindow)
		for i := 0; i < testPerAccount; i++ {
			if _, err := th.Begin("ann", "a1"); err != nil {
				t.Fatalf("attempt %d refused: %v", i+1, err)
			}
		}
		if _, err := th.Begin("ann", "a2"); fablab.ErrorCode(err) != fablab.ETOOMANY {
			t.Fatalf("attempt %d while %d are unfinished: %v, want %s", testPerAccount+1, testPerAccount, err, fablab.ETOOMANY)
		}
	})
	t.Run("a success is withdrawn from the address and clears the account", func(t *testing.T) {
		c := newFakeClock()
		th := NewThrottle(c.Now, testPerAccount, testPerAddr, testWindow)
		fail, _ := th.Begin("ann", "a1")
		fail(false)
		for i := 0; i < 3*testPerAddr; i++ {
			finish, err := th.Begin("ann", "a1")
			if err != nil {
				t.Fatalf("successful login %d refused: %v", i+1, err)
			}
			finish(true)
			finish(true) // finishing twice changes nothing
		}
		if d := th.RetryAfter("ann", "a1"); d != 0 {
			t.Fatalf("RetryAfter = %v after successes", d)
		}
		// The address still holds the one real failure: testPerAddr-1 more block it.
		for i := 0; i < testPerAddr-1; i++ {
			finish, err := th.Begin(fmt.Sprint("user", i), "a1")
			if err != nil {
				t.Fatal(err)
			}
			finish(false)
		}
		if _, err := th.Begin("someone", "a1"); fablab.ErrorCode(err) != fablab.ETOOMANY {
			t.Fatalf("address with %d failures: %v, want blocked", testPerAddr, err)
		}
	})
}
