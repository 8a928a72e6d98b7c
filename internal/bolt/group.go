package bolt

import (
	"context"
	"errors"
	"sync"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// groupCommit runs concurrent write requests together: a single writer
// goroutine takes every request waiting when it becomes free and runs them in
// one transaction, with one commit and one fsync. A lone request starts at
// once (no timer, unlike bbolt's Batch); under contention, requests queue
// while the previous commit syncs and share the next one.
//
// A request's function must return a non-internal error (a *fablab.Error of
// any code but EINTERNAL) only before it has written anything: the
// transaction then goes on with the other requests and commits. Any other
// error aborts the shared transaction, and each of its requests is run again
// alone, so the function must also be safe to run more than once (it may only
// write through tx and assign its results).
type groupCommit struct {
	db   *bbolt.DB
	reqs chan *groupReq
	quit chan struct{}
	done sync.WaitGroup

	mu     sync.RWMutex // held for reading while enqueuing, for writing by close
	closed bool
}

type groupReq struct {
	fn  func(*bbolt.Tx) error
	err chan error
}

// maxGroup bounds how many requests share one transaction.
const maxGroup = 256

var errAbortGroup = errors.New("abort the shared transaction")

func newGroupCommit(db *bbolt.DB) *groupCommit {
	g := &groupCommit{db: db, reqs: make(chan *groupReq, maxGroup), quit: make(chan struct{})}
	g.done.Add(1)
	go g.loop()
	return g
}

// run submits fn and waits for its outcome. The request is not abandoned if
// ctx ends while it waits: once queued it runs, and its outcome is returned.
func (g *groupCommit) run(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &groupReq{fn: fn, err: make(chan error, 1)}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return fablab.Errorf(fablab.EINTERNAL, "the store is closed")
	}
	g.reqs <- r // the writer drains the queue until close holds the lock
	g.mu.RUnlock()
	return <-r.err
}

func (g *groupCommit) loop() {
	defer g.done.Done()
	batch := make([]*groupReq, 0, maxGroup)
	for {
		select {
		case r := <-g.reqs:
			batch = append(batch[:0], r)
		drain:
			for len(batch) < maxGroup {
				select {
				case r := <-g.reqs:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			g.commit(batch)
		case <-g.quit:
			// Requests already queued still run: their callers are waiting.
			for {
				select {
				case r := <-g.reqs:
					g.commit([]*groupReq{r})
				default:
					return
				}
			}
		}
	}
}

func (g *groupCommit) commit(batch []*groupReq) {
	if len(batch) == 1 {
		batch[0].err <- g.solo(batch[0].fn)
		return
	}
	results := make([]error, len(batch))
	err := g.db.Update(func(tx *bbolt.Tx) error {
		for i, r := range batch {
			if err := safeCall(r.fn, tx); err != nil {
				if fablab.ErrorCode(err) == fablab.EINTERNAL {
					return errAbortGroup
				}
				results[i] = err
			}
		}
		return nil
	})
	if err != nil {
		for _, r := range batch {
			r.err <- g.solo(r.fn)
		}
		return
	}
	for i, r := range batch {
		r.err <- results[i]
	}
}

// solo runs fn in a transaction of its own.
func (g *groupCommit) solo(fn func(*bbolt.Tx) error) error {
	return g.db.Update(func(tx *bbolt.Tx) error { return safeCall(fn, tx) })
}

// safeCall turns a panic in fn into an internal error, so that one bad request
// cannot take down the shared writer.
func safeCall(fn func(*bbolt.Tx) error, tx *bbolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fablab.Internal(nil, "panic in a write: %v", p)
		}
	}()
	return fn(tx)
}

// close stops the writer after the requests already queued have run. Later
// requests fail; closing twice is harmless.
func (g *groupCommit) close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	close(g.quit)
	g.mu.Unlock()
	g.done.Wait()
}
