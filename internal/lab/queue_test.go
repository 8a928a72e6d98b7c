package lab

import (
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"github.com/fabgate/fabgate/internal/logbuf"
)

// A device whose queue is full loses its messages (a tap among them goes
// unanswered): each run of drops is logged once, and counted.
func TestDeviceQueueDropsAreLogged(t *testing.T) {
	logs := &logbuf.Buffer{}
	q := deviceQueues{queues: map[string]chan func(){}, dropping: map[string]bool{}, log: slog.New(slog.NewTextHandler(logs, nil))}
	defer q.close()

	// flood blocks the device's worker, fills its queue and sends extra
	// messages more, then lets the worker drain everything.
	flood := func(extra int) {
		t.Helper()
		started, release, drained := make(chan struct{}), make(chan struct{}), make(chan struct{})
		q.do("laser-1", func() { close(started); <-release })
		<-started
		for range deviceQueueLen + extra {
			q.do("laser-1", func() {})
		}
		close(release)
		// Once the worker has drained the queue, a message accepted again
		// ends the run of drops.
		q.mu.Lock()
		ch := q.queues["laser-1"]
		q.mu.Unlock()
		for len(ch) > 0 {
			runtime.Gosched() // polling the worker's progress, not waiting for time to pass
		}
		q.do("laser-1", func() { close(drained) })
		<-drained
	}
	flood(10)
	if n := q.dropped.Load(); n != 10 {
		t.Fatalf("dropped %d, want 10", n)
	}
	if n := strings.Count(logs.String(), "queue full"); n != 1 {
		t.Fatalf("%d log lines for one run of drops, want 1:\n%s", n, logs.String())
	}
	flood(3)
	if n := strings.Count(logs.String(), "queue full"); n != 2 || !strings.Contains(logs.String(), "device=laser-1") {
		t.Fatalf("%d log lines for two runs of drops, want 2 naming the device:\n%s", n, logs.String())
	}
}
