package auth

import (
	"container/list"
	"sync"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// maxTrackedKeys bounds each of the Throttle's tables (accounts, addresses)
// so that a flood of distinct names cannot exhaust memory.
const maxTrackedKeys = 100_000

// Throttle limits failed logins per account and per client address within a
// sliding window. The per-account limit stops guessing one member's password
// from many addresses; the per-address limit stops one client from trying
// many accounts.
//
// Use: call Allow before checking a password and refuse the attempt if it
// fails; call Failure after a wrong password, also when the account does not
// exist (otherwise the throttle reveals which accounts do); call Success after
// a right one. Pass the account in the form the login looks it up by (e.g.
// the lowercased email) and the address as the client's IP (for IPv6,
// usually its /64).
//
// A Throttle is safe for concurrent use. Its memory is bounded: entries whose
// failures are all older than the window are pruned, and each table keeps at
// most 100,000 keys, dropping the one whose last failure is oldest.
type Throttle struct {
	now    fablab.Clock
	window time.Duration

	mu       sync.Mutex
	accounts failureTable
	addrs    failureTable
}

// NewThrottle returns a Throttle that refuses logins once an account has
// perAccount failures, or an address perAddr failures, within window. A
// limit ≤ 0 disables that check. A nil clock means fablab.SystemClock; a
// window ≤ 0 panics, as it is a programming error.
func NewThrottle(now fablab.Clock, perAccount, perAddr int, window time.Duration) *Throttle {
	if window <= 0 {
		panic("auth: NewThrottle window must be positive")
	}
	if now == nil {
		now = fablab.SystemClock
	}
	return &Throttle{
		now:      now,
		window:   window,
		accounts: newFailureTable(perAccount, maxTrackedKeys),
		addrs:    newFailureTable(perAddr, maxTrackedKeys),
	}
}

// Allow returns nil if a login for account from addr may be attempted now,
// and otherwise an ETOOMANY *fablab.Error whose message says how many
// seconds to wait (rounded up).
func (t *Throttle) Allow(account, addr string) error {
	return tooMany(t.RetryAfter(account, addr))
}

// Begin starts a login attempt. It refuses it as Allow does; otherwise it
// counts the attempt as a failure at once, so that parallel attempts cannot
// all pass the check while their passwords are being verified. The caller
// then calls finish exactly once: finish(true) after a right password
// withdraws the attempt and clears the account's failures (as Success does);
// finish(false) keeps it as a failure.
func (t *Throttle) Begin(account, addr string) (finish func(ok bool), err error) {
	t.mu.Lock()
	now := t.now()
	t.prune(now)
	if err := tooMany(t.retryAfter(account, addr, now)); err != nil {
		t.mu.Unlock()
		return nil, err
	}
	t.accounts.record(account, now)
	t.addrs.record(addr, now)
	t.mu.Unlock()
	var once sync.Once
	return func(ok bool) {
		once.Do(func() {
			if !ok {
				return
			}
			t.mu.Lock()
			defer t.mu.Unlock()
			t.accounts.remove(account)
			t.addrs.unrecord(addr, now)
		})
	}, nil
}

// tooMany is the refusal for a wait of d, nil when d ≤ 0.
func tooMany(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	secs := int64((d + time.Second - 1) / time.Second)
	unit := "seconds"
	if secs == 1 {
		unit = "second"
	}
	return fablab.Errorf(fablab.ETOOMANY, "too many failed login attempts; try again in %d %s", secs, unit)
}

// RetryAfter returns how long until Allow(account, addr) would pass, 0 if it
// would pass now. The HTTP layer puts it in a Retry-After header.
func (t *Throttle) RetryAfter(account, addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.prune(now)
	return t.retryAfter(account, addr, now)
}

func (t *Throttle) retryAfter(account, addr string, now time.Time) time.Duration {
	until := t.accounts.blockedUntil(account, t.window)
	if u := t.addrs.blockedUntil(addr, t.window); u.After(until) {
		until = u
	}
	if d := until.Sub(now); d > 0 {
		return d
	}
	return 0
}

// Failure records a failed login for account from addr.
func (t *Throttle) Failure(account, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.prune(now)
	t.accounts.record(account, now)
	t.addrs.record(addr, now)
}

// Success clears the failures of account after a successful login. The
// address keeps its failures: an attacker who owns one account must not be
// able to reset the counter for the address it is guessing others from.
func (t *Throttle) Success(account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.accounts.remove(account)
}

func (t *Throttle) prune(now time.Time) {
	t.accounts.prune(now, t.window)
	t.addrs.prune(now, t.window)
}

// failureTable keeps, per key, the times of its most recent failures: only
// the last limit matter, since the key is blocked exactly while the oldest
// of them is inside the window. Keys are listed by their last failure,
// oldest first, so pruning and eviction take them from the front. (A clock
// that steps backwards only makes pruning a little late.)
type failureTable struct {
	limit   int
	maxKeys int
	keys    map[string]*list.Element // of *failures
	order   *list.List
}

type failures struct {
	key   string
	times []time.Time // oldest first, at most limit
}

func newFailureTable(limit, maxKeys int) failureTable {
	return failureTable{limit: limit, maxKeys: maxKeys, keys: make(map[string]*list.Element), order: list.New()}
}

func (ft *failureTable) record(key string, now time.Time) {
	if ft.limit <= 0 {
		return
	}
	if el, ok := ft.keys[key]; ok {
		f := el.Value.(*failures)
		if len(f.times) == ft.limit {
			copy(f.times, f.times[1:])
			f.times = f.times[:ft.limit-1]
		}
		f.times = append(f.times, now)
		ft.order.MoveToBack(el)
		return
	}
	for len(ft.keys) >= ft.maxKeys {
		ft.remove(ft.order.Front().Value.(*failures).key)
	}
	f := &failures{key: key, times: append(make([]time.Time, 0, min(ft.limit, 8)), now)}
	ft.keys[key] = ft.order.PushBack(f)
}

// blockedUntil returns when key stops being blocked; the zero time if it is
// not blocked by this table at all.
func (ft *failureTable) blockedUntil(key string, window time.Duration) time.Time {
	el, ok := ft.keys[key]
	if !ok || ft.limit <= 0 {
		return time.Time{}
	}
	f := el.Value.(*failures)
	if len(f.times) < ft.limit {
		return time.Time{}
	}
	return f.times[0].Add(window)
}

// prune drops keys whose last failure is outside the window, i.e. now is at
// least window after it.
func (ft *failureTable) prune(now time.Time, window time.Duration) {
	for el := ft.order.Front(); el != nil; el = ft.order.Front() {
		f := el.Value.(*failures)
		if now.Sub(f.times[len(f.times)-1]) < window {
			return
		}
		ft.remove(f.key)
	}
}

// unrecord withdraws one failure of key recorded at time at.
func (ft *failureTable) unrecord(key string, at time.Time) {
	el, ok := ft.keys[key]
	if !ok {
		return
	}
	f := el.Value.(*failures)
	for i, t := range f.times {
		if t.Equal(at) {
			f.times = append(f.times[:i], f.times[i+1:]...)
			break
		}
	}
	if len(f.times) == 0 {
		ft.remove(key)
	}
}

func (ft *failureTable) remove(key string) {
	if el, ok := ft.keys[key]; ok {
		ft.order.Remove(el)
		delete(ft.keys, key)
	}
}
