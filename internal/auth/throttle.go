package auth

import (
	"container/list"
	"sync"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// ThrottleConfig configures a Throttle. Zero fields take the defaults given.
type ThrottleConfig struct {
	// Free is how many failures in a row an account may have from one
	// address before each further attempt from there waits (default 5).
	Free int
	// Delay is the first wait; each further failure doubles it, up to
	// MaxDelay (defaults 1 s and 15 min).
	Delay, MaxDelay time.Duration
	// Memory is how long a pair's failures are remembered after its last
	// one (default 24 h): waiting the delays out does not reset them.
	Memory time.Duration
	// PerAddr failures from one address, over all accounts, within Window
	// block that address until the oldest leaves the window (defaults 20
	// and 15 min); a negative PerAddr disables it.
	PerAddr int
	Window  time.Duration
	// MaxKeys bounds each table, pairs and addresses (default 100 000): past
	// it the entry whose last failure is oldest is dropped.
	MaxKeys int
}

func (c *ThrottleConfig) defaults() {
	if c.Free <= 0 {
		c.Free = 5
	}
	if c.Delay <= 0 {
		c.Delay = time.Second
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 15 * time.Minute
	}
	if c.Memory <= 0 {
		c.Memory = 24 * time.Hour
	}
	if c.PerAddr == 0 {
		c.PerAddr = 20
	}
	if c.Window <= 0 {
		c.Window = 15 * time.Minute
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = 100_000
	}
}

// Throttle slows down password guessing without locking anyone out of their
// account. Failures are counted per (account, client address) pair: after
// Free failures in a row, the pair waits before its next attempt, a wait
// that doubles with each further failure up to MaxDelay. Another address is
// not affected, so guessing an admin's password from one place never keeps
// the admin out from another. Separately, an address that fails PerAddr
// times within Window (over any accounts) is blocked until the oldest
// failure leaves the window; that stops one client from trying many
// accounts. Guessing one account from many addresses is slowed by the cost
// of each hash and the bound on hashes in flight (Limiter), not by a lockout
// that an attacker could turn against the account's owner.
//
// Use: Begin before checking a password, refusing the attempt if it fails;
// then finish(true) after a right password, finish(false) otherwise (also
// when the account does not exist, so that the throttle does not reveal
// which accounts do). Pass the account as the login looks it up (e.g. the
// lowercased email) and the address as the client's IP (for IPv6, its /64).
//
// A Throttle is safe for concurrent use, and its memory is bounded by
// MaxKeys per table.
type Throttle struct {
	now fablab.Clock
	cfg ThrottleConfig

	mu    sync.Mutex
	pairs lru[*pairFailures]
	addrs lru[*addrFailures]
}

// pairFailures are the failures in a row of one (account, address) pair.
type pairFailures struct {
	count int
	last  time.Time
}

// addrFailures are the times of an address's most recent failures, oldest
// first, at most PerAddr of them.
type addrFailures struct {
	times []time.Time
}

// NewThrottle returns a Throttle; a nil clock means fablab.SystemClock.
func NewThrottle(now fablab.Clock, cfg ThrottleConfig) *Throttle {
	if now == nil {
		now = fablab.SystemClock
	}
	cfg.defaults()
	return &Throttle{now: now, cfg: cfg, pairs: newLRU[*pairFailures](cfg.MaxKeys), addrs: newLRU[*addrFailures](cfg.MaxKeys)}
}

func pairKey(account, addr string) string { return account + "\x00" + addr }

// Begin starts a login attempt for account from addr. It refuses it with an
// ETOOMANY *fablab.Error, and returns how long to wait, while the pair or
// the address must wait. Otherwise it counts the attempt as a failure at
// once, so that parallel attempts cannot all pass the check while their
// passwords are being verified, and the caller calls finish exactly once:
// finish(true) after a right password forgets the pair's failures and
// withdraws the attempt from the address's; finish(false) keeps it.
func (t *Throttle) Begin(account, addr string) (finish func(ok bool), wait time.Duration, err error) {
	t.mu.Lock()
	now := t.now()
	t.prune(now)
	if wait = t.retryAfter(account, addr, now); wait > 0 {
		t.mu.Unlock()
		return nil, wait, tooMany(wait)
	}
	key := pairKey(account, addr)
	p, ok := t.pairs.get(key)
	if !ok {
		p = &pairFailures{}
	}
	p.count++
	p.last = now
	t.pairs.put(key, p, now)
	if t.cfg.PerAddr > 0 {
		a, ok := t.addrs.get(addr)
		if !ok {
			a = &addrFailures{}
		}
		if len(a.times) == t.cfg.PerAddr {
			a.times = append(a.times[:0], a.times[1:]...)
		}
		a.times = append(a.times, now)
		t.addrs.put(addr, a, now)
	}
	t.mu.Unlock()
	var once sync.Once
	return func(ok bool) {
		once.Do(func() {
			if !ok {
				return
			}
			t.mu.Lock()
			defer t.mu.Unlock()
			t.pairs.remove(key)
			if a, found := t.addrs.get(addr); found {
				for i, at := range a.times {
					if at.Equal(now) {
						a.times = append(a.times[:i], a.times[i+1:]...)
						break
					}
				}
				if len(a.times) == 0 {
					t.addrs.remove(addr)
				}
			}
		})
	}, 0, nil
}

// RetryAfter returns how long until account may be tried from addr again,
// 0 if now.
func (t *Throttle) RetryAfter(account, addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.prune(now)
	return t.retryAfter(account, addr, now)
}

func (t *Throttle) retryAfter(account, addr string, now time.Time) time.Duration {
	var until time.Time
	if p, ok := t.pairs.get(pairKey(account, addr)); ok && p.count >= t.cfg.Free {
		until = p.last.Add(t.delay(p.count))
	}
	if a, ok := t.addrs.get(addr); ok && t.cfg.PerAddr > 0 && len(a.times) >= t.cfg.PerAddr {
		if u := a.times[0].Add(t.cfg.Window); u.After(until) {
			until = u
		}
	}
	if d := until.Sub(now); d > 0 {
		return d
	}
	return 0
}

// delay is the wait after the count-th failure in a row (count ≥ Free).
func (t *Throttle) delay(count int) time.Duration {
	d := t.cfg.Delay
	for i := t.cfg.Free; i < count && d < t.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, t.cfg.MaxDelay)
}

// Len returns the number of pairs and addresses remembered now.
func (t *Throttle) Len() (pairs, addrs int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(t.now())
	return t.pairs.len(), t.addrs.len()
}

func (t *Throttle) prune(now time.Time) {
	t.pairs.prune(now, t.cfg.Memory)
	t.addrs.prune(now, t.cfg.Window)
}

// tooMany is the refusal for a wait of d.
func tooMany(d time.Duration) error {
	secs := int64((d + time.Second - 1) / time.Second)
	unit := "seconds"
	if secs == 1 {
		unit = "second"
	}
	return fablab.Errorf(fablab.ETOOMANY, "too many failed login attempts; try again in %d %s", secs, unit)
}

// lru is a map whose entries are listed by their last update, oldest first,
// so that pruning and eviction take them from the front. (A clock that
// steps backwards only makes pruning a little late.)
type lru[V any] struct {
	max   int
	keys  map[string]*list.Element // of *lruEntry[V]
	order *list.List
}

type lruEntry[V any] struct {
	key string
	at  time.Time
	val V
}

func newLRU[V any](max int) lru[V] {
	return lru[V]{max: max, keys: map[string]*list.Element{}, order: list.New()}
}

func (l *lru[V]) get(key string) (V, bool) {
	if el, ok := l.keys[key]; ok {
		return el.Value.(*lruEntry[V]).val, true
	}
	var zero V
	return zero, false
}

// put stores val under key as updated at at, evicting the oldest entry when
// the map is full.
func (l *lru[V]) put(key string, val V, at time.Time) {
	if el, ok := l.keys[key]; ok {
		e := el.Value.(*lruEntry[V])
		e.val, e.at = val, at
		l.order.MoveToBack(el)
		return
	}
	for len(l.keys) >= l.max {
		l.remove(l.order.Front().Value.(*lruEntry[V]).key)
	}
	l.keys[key] = l.order.PushBack(&lruEntry[V]{key: key, at: at, val: val})
}

func (l *lru[V]) remove(key string) {
	if el, ok := l.keys[key]; ok {
		l.order.Remove(el)
		delete(l.keys, key)
	}
}

// prune drops the entries last updated at least keep before now.
func (l *lru[V]) prune(now time.Time, keep time.Duration) {
	for el := l.order.Front(); el != nil; el = l.order.Front() {
		e := el.Value.(*lruEntry[V])
		if now.Sub(e.at) < keep {
			return
		}
		l.remove(e.key)
	}
}

func (l *lru[V]) len() int { return len(l.keys) }
