package jobs

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/logbuf"
)

var paris = mustLoad("Europe/Paris")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// t0 is a Tuesday noon in Paris.
var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, paris)

type fixture struct {
	reg   *Registry
	clock *bolttest.Clock
	prom  *prometheus.Registry
	logs  *logbuf.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: bolttest.NewClock(t0), prom: prometheus.NewRegistry(), logs: &logbuf.Buffer{}}
	var err error
	f.reg, err = New(Config{Location: paris, Now: f.clock.Now, Log: slog.New(slog.NewTextHandler(f.logs, nil)), Metrics: f.prom})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.reg.Stop)
	return f
}

func (f *fixture) add(t *testing.T, j Job) {
	t.Helper()
	if err := f.reg.Add(j); err != nil {
		t.Fatalf("add %s: %v", j.Name, err)
	}
}

func (f *fixture) status(t *testing.T, name string) JobStatus {
	t.Helper()
	s, err := f.reg.JobStatus(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// metric returns the value of the series name{labels} gathered from the
// Prometheus registry (a histogram gives its sample count), and whether
// it exists.
func (f *fixture) metric(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := f.prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func (f *fixture) wantMetric(t *testing.T, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := f.metric(t, name, labels)
	if !ok {
		t.Errorf("%s%v: no such series", name, labels)
	} else if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func runs(job, outcome string) map[string]string {
	return map[string]string{"job": job, "outcome": outcome}
}

func job(name string) map[string]string { return map[string]string{"job": name} }

// TestRunNowRecordsOutcomes: an ok run, a failing one and a panicking one,
// each recorded in the status (times and durations by the injected clock)
// and in the metrics.
func TestRunNowRecordsOutcomes(t *testing.T) {
	f := newFixture(t)
	var mode atomic.Value
	mode.Store("ok")
	f.add(t, Job{Name: "billing", Schedule: "0 * * * * *", Run: func(ctx context.Context) error {
		f.clock.Advance(1500 * time.Millisecond)
		switch mode.Load() {
		case "error":
			return errors.New("ledger locked")
		case "panic":
			panic("charge blew up")
		}
		return nil
	}})

	s := f.status(t, "billing")
	if s.Runs != 0 || s.LastRunAt != nil || s.LastOutcome != "" || s.NextRunAt != nil || s.Running {
		t.Errorf("before any run: %+v", s)
	}
	f.wantMetric(t, "fabgate_job_runs_total", runs("billing", "ok"), 0)
	f.wantMetric(t, "fabgate_job_last_success_timestamp_seconds", job("billing"), 0)

	if err := f.reg.RunNow(t.Context(), "billing"); err != nil {
		t.Fatalf("ok run: %v", err)
	}
	s = f.status(t, "billing")
	if s.Runs != 1 || s.Failures != 0 || s.LastOutcome != OutcomeOK || s.LastTrigger != TriggerManual || s.LastError != "" {
		t.Errorf("after an ok run: %+v", s)
	}
	if s.LastRunAt == nil || !s.LastRunAt.Equal(t0) || s.LastRunAt.Location() != paris {
		t.Errorf("last_run_at %v, want %v in Paris", s.LastRunAt, t0)
	}
	if s.LastDurationMS == nil || *s.LastDurationMS != 1500 {
		t.Errorf("last_duration_ms %v, want 1500", s.LastDurationMS)
	}
	if s.LastSuccessAt == nil || !s.LastSuccessAt.Equal(t0.Add(1500*time.Millisecond)) {
		t.Errorf("last_success_at %v, want the end of the run", s.LastSuccessAt)
	}
	f.wantMetric(t, "fabgate_job_runs_total", runs("billing", "ok"), 1)
	f.wantMetric(t, "fabgate_job_last_success_timestamp_seconds", job("billing"), float64(t0.Add(1500*time.Millisecond).Unix())+0.5)
	f.wantMetric(t, "fabgate_job_duration_seconds", job("billing"), 1)

	mode.Store("error")
	err := f.reg.RunNow(t.Context(), "billing")
	var failed *Failed
	if !errors.As(err, &failed) || failed.Outcome != OutcomeError || !strings.Contains(err.Error(), "ledger locked") {
		t.Fatalf("failing run: %v, want a *Failed with the job's error", err)
	}
	s = f.status(t, "billing")
	if s.Runs != 2 || s.Failures != 1 || s.LastOutcome != OutcomeError || s.LastError != "ledger locked" {
		t.Errorf("after a failing run: %+v", s)
	}
	if !s.LastSuccessAt.Equal(t0.Add(1500 * time.Millisecond)) {
		t.Errorf("a failure moved last_success_at to %v", s.LastSuccessAt)
	}

	mode.Store("panic")
	err = f.reg.RunNow(t.Context(), "billing")
	if !errors.As(err, &failed) || failed.Outcome != OutcomePanic {
		t.Fatalf("panicking run: %v, want a *Failed with outcome panic", err)
	}
	s = f.status(t, "billing")
	if s.Runs != 3 || s.Failures != 2 || s.LastOutcome != OutcomePanic || s.LastError != "panic: charge blew up" || s.Running {
		t.Errorf("after a panicking run: %+v", s)
	}
	f.wantMetric(t, "fabgate_job_runs_total", runs("billing", "error"), 1)
	f.wantMetric(t, "fabgate_job_runs_total", runs("billing", "panic"), 1)
	f.wantMetric(t, "fabgate_job_duration_seconds", job("billing"), 3)
	f.wantMetric(t, "fabgate_job_running", job("billing"), 0)
	log := f.logs.String()
	for _, want := range []string{"level=ERROR", `msg="job panicked"`, "job=billing", "charge blew up", "stack=", "jobs_test.go"} {
		if !strings.Contains(log, want) {
			t.Errorf("the panic's log lacks %q:\n%s", want, log)
		}
	}

	// After the panic the job is not left marked running: it runs again.
	mode.Store("ok")
	if err := f.reg.RunNow(t.Context(), "billing"); err != nil {
		t.Fatalf("the run after a panic: %v", err)
	}
	if s = f.status(t, "billing"); s.Runs != 4 || s.LastOutcome != OutcomeOK {
		t.Errorf("after the run following the panic: %+v", s)
	}
}

// TestRunNowUnknownJob: ENOTFOUND, nothing recorded.
func TestRunNowUnknownJob(t *testing.T) {
	f := newFixture(t)
	if err := f.reg.RunNow(t.Context(), "nope"); fablab.ErrorCode(err) != fablab.ENOTFOUND {
		t.Errorf("RunNow(nope) = %v, want not_found", err)
	}
	if _, err := f.reg.JobStatus("nope"); fablab.ErrorCode(err) != fablab.ENOTFOUND {
		t.Errorf("JobStatus(nope) = %v, want not_found", err)
	}
}

// blocker is a job's Run that signals it started and waits for release.
type blocker struct {
	started, release chan struct{}
	runs             atomic.Int64
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}, 10), release: make(chan struct{})}
}

func (b *blocker) Run(ctx context.Context) error {
	b.runs.Add(1)
	b.started <- struct{}{}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestOneRunAtATime: while a run is under way, RunNow is refused with
// ECONFLICT (and nothing recorded), and a scheduled tick is recorded as
// skipped; once it ends, the job runs again.
func TestOneRunAtATime(t *testing.T) {
	f := newFixture(t)
	b := newBlocker()
	f.add(t, Job{Name: "invoices", Schedule: "0 0 2 1 * *", Run: b.Run})
	done := make(chan error, 1)
	go func() { done <- f.reg.RunNow(context.Background(), "invoices") }()
	<-b.started

	s := f.status(t, "invoices")
	if !s.Running || s.RunningSince == nil || !s.RunningSince.Equal(t0) {
		t.Errorf("while running: %+v", s)
	}
	f.wantMetric(t, "fabgate_job_running", job("invoices"), 1)

	f.clock.Advance(time.Minute)
	err := f.reg.RunNow(t.Context(), "invoices")
	if fablab.ErrorCode(err) != fablab.ECONFLICT || !strings.Contains(err.Error(), "is running") {
		t.Errorf("RunNow while running = %v, want conflict", err)
	}
	if s := f.status(t, "invoices"); s.Skips != 0 || s.LastRunAt != nil {
		t.Errorf("a refused RunNow was recorded: %+v", s)
	}

	// The scheduler's tick goes through the same rule.
	e := f.reg.entries["invoices"]
	if err := f.reg.execute(f.reg.ctx, e, TriggerSchedule, e.job.Run); fablab.ErrorCode(err) != fablab.ECONFLICT {
		t.Errorf("tick while running = %v, want conflict", err)
	}
	s = f.status(t, "invoices")
	if s.Skips != 1 || s.Runs != 0 || s.LastOutcome != OutcomeSkipped || s.LastTrigger != TriggerSchedule ||
		!s.LastRunAt.Equal(t0.Add(time.Minute)) || !strings.Contains(s.LastError, "still running since") {
		t.Errorf("after a skipped tick: %+v", s)
	}
	f.wantMetric(t, "fabgate_job_runs_total", runs("invoices", "skipped"), 1)
	if n := b.runs.Load(); n != 1 {
		t.Errorf("the job ran %d times, want 1", n)
	}

	close(b.release)
	if err := <-done; err != nil {
		t.Fatalf("the blocked run: %v", err)
	}
	s = f.status(t, "invoices")
	if s.Running || s.Runs != 1 || s.LastOutcome != OutcomeOK || !s.LastRunAt.Equal(t0) || *s.LastDurationMS != 60_000 {
		t.Errorf("after the run: %+v", s)
	}
	f.wantMetric(t, "fabgate_job_running", job("invoices"), 0)
	if err := f.reg.RunNow(t.Context(), "invoices"); err != nil {
		t.Errorf("RunNow once finished: %v", err)
	}
}

// TestCatchUpRunsOnceAtStart: the catch-up runs at Start, before the
// schedule, recorded as a run; a second Start does not repeat it; a job
// added after Start is caught up at once.
func TestCatchUpRunsOnceAtStart(t *testing.T) {
	f := newFixture(t)
	var catchUps, ticks atomic.Int64
	f.add(t, Job{Name: "invoices", Schedule: "0 0 2 1 * *",
		Run:     func(context.Context) error { ticks.Add(1); return nil },
		CatchUp: func(context.Context) error { catchUps.Add(1); f.clock.Advance(time.Second); return nil }})
	f.add(t, Job{Name: "sweep", Schedule: "0 0 2 1 * *", Run: func(context.Context) error { return nil }})
	if n := catchUps.Load(); n != 0 {
		t.Fatalf("caught up %d times before Start", n)
	}
	f.reg.Start()
	f.reg.Start()
	if n := catchUps.Load(); n != 1 {
		t.Errorf("caught up %d times, want once", n)
	}
	if n := ticks.Load(); n != 0 {
		t.Errorf("Run ran %d times at start, want none (the catch-up is what runs)", n)
	}
	s := f.status(t, "invoices")
	if s.Runs != 1 || s.LastTrigger != TriggerCatchUp || s.LastOutcome != OutcomeOK || *s.LastDurationMS != 1000 {
		t.Errorf("after the catch-up: %+v", s)
	}
	f.wantMetric(t, "fabgate_job_runs_total", runs("invoices", "ok"), 1)
	if s := f.status(t, "sweep"); s.Runs != 0 {
		t.Errorf("a job without CatchUp ran at start: %+v", s)
	}

	var late atomic.Int64
	f.add(t, Job{Name: "late", Schedule: "@daily", Run: func(context.Context) error { return nil },
		CatchUp: func(context.Context) error { late.Add(1); return errors.New("period 2026-02 not closed") }})
	if n := late.Load(); n != 1 {
		t.Errorf("a job added after Start caught up %d times, want once", n)
	}
	if s := f.status(t, "late"); s.Failures != 1 || s.LastTrigger != TriggerCatchUp || s.LastError != "period 2026-02 not closed" {
		t.Errorf("a failing catch-up: %+v", s)
	}
}

// TestNextRunAt: the next time the schedule names, in the lab's zone, by
// the injected clock; none before Start or after Stop.
func TestNextRunAt(t *testing.T) {
	f := newFixture(t)
	f.add(t, Job{Name: "prune", Schedule: "0 30 3 * * *", Run: func(context.Context) error { return nil }})
	f.add(t, Job{Name: "invoices", Schedule: "0 0 2 1 * *", Run: func(context.Context) error { return nil }})
	f.add(t, Job{Name: "sweep", Schedule: "@every 15s", Run: func(context.Context) error { return nil }})
	if s := f.status(t, "prune"); s.NextRunAt != nil {
		t.Errorf("next_run_at %v before Start", s.NextRunAt)
	}
	f.reg.Start()
	for name, want := range map[string]time.Time{
		"prune":    time.Date(2026, 3, 11, 3, 30, 0, 0, paris),
		"invoices": time.Date(2026, 4, 1, 2, 0, 0, 0, paris),
	} {
		if s := f.status(t, name); s.NextRunAt == nil || !s.NextRunAt.Equal(want) {
			t.Errorf("%s: next_run_at %v, want %v", name, s.NextRunAt, want)
		}
	}
	// @every counts from the scheduler's own start: within 15 s of now.
	if s := f.status(t, "sweep"); s.NextRunAt == nil || s.NextRunAt.Before(t0) || s.NextRunAt.After(t0.Add(16*time.Second)) {
		t.Errorf("sweep: next_run_at %v, want within 15 s of %v", s.NextRunAt, t0)
	}
	f.reg.Stop()
	if s := f.status(t, "prune"); s.NextRunAt != nil {
		t.Errorf("next_run_at %v after Stop", s.NextRunAt)
	}
}

// TestAddRefuses: bad names, schedules, missing Run and duplicates.
func TestAddRefuses(t *testing.T) {
	f := newFixture(t)
	ok := func(context.Context) error { return nil }
	f.add(t, Job{Name: "prune", Schedule: "0 30 3 * * *", Run: ok})
	for _, tc := range []struct {
		name string
		job  Job
		code string
		on   string
	}{
		{"no name", Job{Schedule: "@hourly", Run: ok}, fablab.EINVALID, "name"},
		{"name for a URL", Job{Name: "Prune Taps", Schedule: "@hourly", Run: ok}, fablab.EINVALID, "name"},
		{"no run", Job{Name: "x", Schedule: "@hourly"}, fablab.EINVALID, "run"},
		{"five fields", Job{Name: "x", Schedule: "30 3 * * *", Run: ok}, fablab.EINVALID, "schedule"},
		{"empty schedule", Job{Name: "x", Run: ok}, fablab.EINVALID, "schedule"},
		{"duplicate", Job{Name: "prune", Schedule: "@hourly", Run: ok}, fablab.ECONFLICT, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.reg.Add(tc.job)
			var fe *fablab.Error
			if fablab.ErrorCode(err) != tc.code || !errors.As(err, &fe) || fe.Field != tc.on {
				t.Errorf("Add = %v, want %s on %s", err, tc.code, tc.on)
			}
		})
	}
	if n := len(f.reg.Status()); n != 1 {
		t.Errorf("%d jobs registered, want 1", n)
	}
}

// TestMetricsRegisteredOnce: a second registry on the same Prometheus
// registry is refused (its series would clash).
func TestMetricsRegisteredOnce(t *testing.T) {
	f := newFixture(t)
	if _, err := New(Config{Metrics: f.prom}); err == nil {
		t.Error("a second registry's metrics were accepted")
	}
}

// TestStopCancelsAndWaits: Stop cancels a run's context and returns once
// the run has ended, recorded.
func TestStopCancelsAndWaits(t *testing.T) {
	f := newFixture(t)
	b := newBlocker()
	f.add(t, Job{Name: "slow", Schedule: "@hourly", Run: b.Run, CatchUp: b.Run})
	started := make(chan struct{})
	go func() { close(started); f.reg.Start() }()
	<-started
	<-b.started // the catch-up is running
	f.reg.Stop()
	s := f.status(t, "slow")
	if s.Running || s.Runs != 1 || s.LastOutcome != OutcomeError || s.LastError != context.Canceled.Error() {
		t.Errorf("after Stop: %+v", s)
	}
}

// soon fires a few milliseconds after each run: the test waits for runs,
// never for the clock to reach a time.
type soon struct{}

func (soon) Next(t time.Time) time.Time { return t.Add(5 * time.Millisecond) }

// TestSchedulerGoesOnAfterPanic: under the real scheduler, a job that
// panics on its first run is logged and recorded, and runs again; so does
// the other job.
func TestSchedulerGoesOnAfterPanic(t *testing.T) {
	f := newFixture(t)
	panicky, other := make(chan int64, 100), make(chan int64, 100)
	var np, no atomic.Int64
	f.add(t, Job{Name: "panicky", Schedule: "@hourly", Run: func(context.Context) error {
		n := np.Add(1)
		defer send(panicky, n)
		if n == 1 {
			panic("sweep blew up")
		}
		return nil
	}})
	f.add(t, Job{Name: "other", Schedule: "@hourly", Run: func(context.Context) error { send(other, no.Add(1)); return nil }})
	for _, e := range f.reg.entries {
		e.sched = soon{} // the real timer, firing at once
	}
	f.reg.Start()
	for _, ch := range []chan int64{panicky, other} {
		for n := int64(0); n < 3; {
			n = <-ch
		}
	}
	f.reg.Stop()
	s := f.status(t, "panicky")
	if s.Failures != 1 || s.Runs < 3 || s.LastOutcome != OutcomeOK || s.LastTrigger != TriggerSchedule {
		t.Errorf("panicky: %+v", s)
	}
	if s := f.status(t, "other"); s.Failures != 0 || s.Runs < 3 {
		t.Errorf("other: %+v", s)
	}
	f.wantMetric(t, "fabgate_job_runs_total", runs("panicky", "panic"), 1)
	log := f.logs.String()
	if n := strings.Count(log, "level=ERROR"); n != 1 || !strings.Contains(log, "sweep blew up") {
		t.Errorf("%d error lines, want the one panic:\n%s", n, log)
	}
}

// send reports n on ch unless it is full (then it holds larger ones).
func send(ch chan int64, n int64) {
	select {
	case ch <- n:
	default:
	}
}
