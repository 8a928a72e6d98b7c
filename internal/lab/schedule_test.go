package lab

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/logbuf"
)

// soon fires a few milliseconds after each run: the test waits for runs to
// happen, never for a minute of the clock to pass.
type soon struct{}

func (soon) Next(t time.Time) time.Time { return t.Add(5 * time.Millisecond) }

// TestSchedulerLogsPanicsAndGoesOn: a job that panics is logged at error
// level with the panic and its stack (it was discarded), and the scheduler
// keeps running it and the other jobs.
func TestSchedulerLogsPanicsAndGoesOn(t *testing.T) {
	logs := &logbuf.Buffer{}
	c := newScheduler(time.UTC, slog.New(slog.NewTextHandler(logs, nil)))
	var panicky, other atomic.Int64
	c.Schedule(soon{}, jobFunc(func() {
		if panicky.Add(1) == 1 {
			panic("sweep blew up")
		}
	}))
	c.Schedule(soon{}, jobFunc(func() { other.Add(1) }))
	c.Start()
	defer func() { <-c.Stop().Done() }()

	deadline := time.Now().Add(30 * time.Second)
	for panicky.Load() < 3 || other.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the scheduler stopped after a panic: panicky ran %d times, the other job %d\nlog:\n%s", panicky.Load(), other.Load(), logs.String())
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not waiting for time to pass
	}
	log := logs.String()
	for _, want := range []string{"level=ERROR", "sweep blew up", "stack=", "component=cron"} {
		if !strings.Contains(log, want) {
			t.Errorf("panic log lacks %q:\n%s", want, log)
		}
	}
	if n := strings.Count(log, "level=ERROR"); n != 1 {
		t.Errorf("%d error lines, want the one panic:\n%s", n, log)
	}
}

type jobFunc func()

func (f jobFunc) Run() { f() }
