package bolt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

func openGroupDB(t *testing.T) (*bbolt.DB, *groupCommit) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	g := newGroupCommit(db)
	t.Cleanup(func() {
		g.close()
		if err := db.View(func(tx *bbolt.Tx) error {
			var errs []error
			for err := range tx.Check() {
				errs = append(errs, err)
			}
			return errors.Join(errs...)
		}); err != nil {
			t.Errorf("consistency: %v", err)
		}
		db.Close()
	})
	return db, g
}

// put returns a request that writes key=val, after answering ok/err.
func put(key string, fail error, txids *sync.Map) func(*bbolt.Tx) error {
	return func(tx *bbolt.Tx) error {
		if txids != nil {
			txids.Store(key, tx.ID())
		}
		if fail != nil {
			return fail
		}
		return tx.Bucket([]byte("b")).Put([]byte(key), []byte("v"))
	}
}

func keys(t *testing.T, db *bbolt.DB) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	if err := db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("b")).ForEach(func(k, _ []byte) error { out[string(k)] = true; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// holdWriter blocks the writer inside a transaction until release is
// closed, so that the requests sent meanwhile queue up and share the next one.
func holdWriter(t *testing.T, g *groupCommit) (release func(), done chan error) {
	entered, hold := make(chan struct{}), make(chan struct{})
	done = make(chan error, 1)
	go func() {
		done <- g.run(context.Background(), func(tx *bbolt.Tx) error {
			close(entered)
			<-hold
			return tx.Bucket([]byte("b")).Put([]byte("holder"), nil)
		})
	}()
	<-entered
	return func() { close(hold) }, done
}

func TestGroupCommitSharesOneTransaction(t *testing.T) {
	tests := []struct {
		name string
		fail map[int]error // request index → error its function returns
		want map[int]string
	}{
		{"all succeed", nil, nil},
		{"rule errors leave the others committed", map[int]error{1: fablab.Errorf(fablab.CodeBookingConflict, "taken"), 4: fablab.Errorf(fablab.EINVALID, "bad")},
			map[int]string{1: fablab.CodeBookingConflict, 4: fablab.EINVALID}},
		{"an internal error reruns the others alone", map[int]error{2: errors.New("disk on fire")},
			map[int]string{2: fablab.EINTERNAL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, g := openGroupDB(t)
			release, holderDone := holdWriter(t, g)
			const n = 6
			var txids sync.Map
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					errs[i] = g.run(context.Background(), put(fmt.Sprint("k", i), tt.fail[i], &txids))
				}(i)
			}
			// Wait until all n are queued behind the held transaction.
			for len(g.reqs) < n {
				runtimeYield()
			}
			release()
			wg.Wait()
			if err := <-holderDone; err != nil {
				t.Fatal(err)
			}
			got := keys(t, db)
			for i := 0; i < n; i++ {
				if fablab.ErrorCode(errs[i]) != tt.want[i] {
					t.Errorf("request %d: error %v, want code %q", i, errs[i], tt.want[i])
				}
				if written := got[fmt.Sprint("k", i)]; written != (tt.want[i] == "") {
					t.Errorf("request %d: written=%v, want %v", i, written, tt.want[i] == "")
				}
			}
			if len(tt.fail) == 0 || tt.want[2] != fablab.EINTERNAL {
				// Every request ran in one and the same transaction.
				ids := map[any]bool{}
				txids.Range(func(_, v any) bool { ids[v] = true; return true })
				if len(ids) != 1 {
					t.Errorf("the %d queued requests ran in %d transactions, want 1", n, len(ids))
				}
			}
		})
	}
}

func TestGroupCommitPanicIsContained(t *testing.T) {
	db, g := openGroupDB(t)
	release, holderDone := holdWriter(t, g)
	errs := make(chan error, 3)
	for i, fn := range []func(*bbolt.Tx) error{
		put("a", nil, nil),
		func(*bbolt.Tx) error { panic("boom") },
		put("c", nil, nil),
	} {
		go func() { errs <- fmt.Errorf("%d: %w", i, g.run(context.Background(), fn)) }()
	}
	for len(g.reqs) < 3 {
		runtimeYield()
	}
	release()
	internal := 0
	for i := 0; i < 3; i++ {
		if err := <-errs; errors.Unwrap(err) != nil {
			if fablab.ErrorCode(errors.Unwrap(err)) != fablab.EINTERNAL {
				t.Errorf("unexpected error %v", err)
			}
			internal++
		}
	}
	if internal != 1 {
		t.Errorf("%d requests failed, want exactly the one that panicked", internal)
	}
	<-holderDone
	if got := keys(t, db); !got["a"] || !got["c"] || len(got) != 3 {
		t.Errorf("keys after the panic: %v", got)
	}
}

func TestGroupCommitClose(t *testing.T) {
	db, g := openGroupDB(t)
	release, holderDone := holdWriter(t, g)
	queued := make(chan error, 1)
	go func() { queued <- g.run(context.Background(), put("queued", nil, nil)) }()
	for len(g.reqs) < 1 {
		runtimeYield()
	}
	closed := make(chan struct{})
	go func() { g.close(); close(closed) }()
	release()
	<-closed
	if err := <-queued; err != nil {
		t.Fatalf("a request queued before close failed: %v", err)
	}
	<-holderDone
	if err := g.run(context.Background(), put("late", nil, nil)); fablab.ErrorCode(err) != fablab.EINTERNAL {
		t.Fatalf("a request after close: %v, want an internal error", err)
	}
	if got := keys(t, db); !got["queued"] || got["late"] {
		t.Fatalf("keys: %v", got)
	}
	g.close() // twice is harmless
}

func TestGroupCommitCancelledContext(t *testing.T) {
	db, g := openGroupDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.run(ctx, put("x", nil, nil)); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if len(keys(t, db)) != 0 {
		t.Fatal("a cancelled request wrote")
	}
}

// runtimeYield lets the goroutines being waited for run.
func runtimeYield() { runtime.Gosched() }
