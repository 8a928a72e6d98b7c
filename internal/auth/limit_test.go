package auth

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestLimiterBoundsConcurrency: of many callers arriving while the slots
// are held, exactly Cap get one and the others are refused at once; a slot
// given back is taken again, and at no point do more than Cap run.
func TestLimiterBoundsConcurrency(t *testing.T) {
	l := NewLimiter(3)
	var (
		running, peak atomic.Int64
		admitted      atomic.Int64
		tried, done   sync.WaitGroup
		hold          = make(chan struct{})
	)
	for range 40 {
		tried.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			release, ok := l.TryAcquire()
			tried.Done()
			if !ok {
				return
			}
			admitted.Add(1)
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			<-hold
			running.Add(-1)
			release()
			release() // a second call gives back nothing more
		}()
	}
	tried.Wait() // every caller has tried while the admitted hold their slots
	if n := admitted.Load(); n != 3 {
		t.Fatalf("%d of 40 callers got a slot, want 3", n)
	}
	close(hold)
	done.Wait()
	if peak.Load() > 3 {
		t.Fatalf("%d ran at once, want at most 3", peak.Load())
	}
	if l.InUse() != 0 {
		t.Fatalf("%d slots still taken after every release", l.InUse())
	}
}

// TestLimiterRefusesWhenFull: with every slot held, TryAcquire fails at
// once; after a release it succeeds again.
func TestLimiterRefusesWhenFull(t *testing.T) {
	l := NewLimiter(2)
	r1, ok1 := l.TryAcquire()
	_, ok2 := l.TryAcquire()
	if !ok1 || !ok2 {
		t.Fatal("the first two acquisitions failed")
	}
	if _, ok := l.TryAcquire(); ok {
		t.Fatal("a third slot was given out of 2")
	}
	r1()
	r1()
	if _, ok := l.TryAcquire(); !ok {
		t.Fatal("no slot after a release")
	}
	if _, ok := l.TryAcquire(); ok {
		t.Fatal("a double release gave back two slots")
	}
	if NewLimiter(0).Cap() != 1 {
		t.Fatal("NewLimiter(0) is not one slot")
	}
}
