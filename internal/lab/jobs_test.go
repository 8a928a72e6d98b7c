package lab_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/jobs"
	"github.com/fabgate/fabgate/internal/lab"
	"github.com/fabgate/fabgate/internal/wire"
)

// TestLabJobs: the lab's jobs are registered with their schedules, and the
// sweep run through the registry ends a session at its booking's end.
func TestLabJobs(t *testing.T) {
	e := newEnv(t, embedded)
	want := map[string]string{"sessions_sweep": "*/15 * * * * *", "allowlists": "0 0 * * * *", "prune": "0 30 3 * * *"}
	got := map[string]string{}
	for _, s := range e.lab.Jobs.Status() {
		got[s.Name] = s.Schedule
		if s.NextRunAt != nil {
			t.Errorf("%s: next_run_at %v in a lab with a manual schedule", s.Name, s.NextRunAt)
		}
	}
	if len(got) != len(want) {
		t.Errorf("jobs %v, want %v", got, want)
	}
	for name, sched := range want {
		if got[name] != sched {
			t.Errorf("job %s: schedule %q, want %q", name, got[name], sched)
		}
	}

	b := e.book(e.ada, e.laser, t0, t0.Add(time.Hour))
	d := e.device(devLaser)
	_, s := e.grant(d, e.ada)
	e.clock.Set(b.End)
	d.heartbeat()
	if err := e.lab.Jobs.RunNow(context.Background(), "sessions_sweep"); err != nil {
		t.Fatalf("run the sweep: %v", err)
	}
	if l := d.expect(wire.OpLock); l.SessionID != s.ID.String() || l.Reason != fablab.EndBookingEnd {
		t.Errorf("lock %+v", l)
	}
	e.waitEnded(s.ID, fablab.EndBookingEnd)
	st, err := e.lab.Jobs.JobStatus("sessions_sweep")
	if err != nil {
		t.Fatal(err)
	}
	if st.Runs != 1 || st.LastOutcome != jobs.OutcomeOK || st.LastTrigger != jobs.TriggerManual || !st.LastRunAt.Equal(b.End) {
		t.Errorf("sweep status: %+v", st)
	}
	if err := e.lab.Jobs.RunNow(context.Background(), "prune"); err != nil {
		t.Errorf("run the prune: %v", err)
	}
}

// TestLabStartsCallerJobs: jobs given in Config.Jobs are scheduled with the
// lab's, their catch-up run at start, and the jobs' metrics registered.
func TestLabStartsCallerJobs(t *testing.T) {
	clock := bolttest.NewClock(t0)
	store := bolttest.Open(t, clock.Now)
	reg := prometheus.NewRegistry()
	var caughtUp atomic.Int64
	l, err := lab.Start(context.Background(), lab.Config{
		Store: store, Now: clock.Now, Listen: "127.0.0.1:0", Metrics: reg,
		Jobs: []jobs.Job{{Name: "invoices", Schedule: "0 0 2 1 * *",
			Run:     func(context.Context) error { return nil },
			CatchUp: func(context.Context) error { caughtUp.Add(1); return nil }}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	if n := caughtUp.Load(); n != 1 {
		t.Errorf("caught up %d times at start, want once", n)
	}
	st, err := l.Jobs.JobStatus("invoices")
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 4, 1, 2, 0, 0, 0, t0.Location()); st.Runs != 1 || st.LastTrigger != jobs.TriggerCatchUp || st.NextRunAt == nil || !st.NextRunAt.Equal(want) {
		t.Errorf("invoices: %+v, want one catch-up and the next run at %v", st, want)
	}
	sweep, err := l.Jobs.JobStatus("sessions_sweep")
	if err != nil {
		t.Fatal(err)
	}
	if sweep.NextRunAt == nil || sweep.NextRunAt.After(t0.Add(15*time.Second)) || sweep.NextRunAt.Before(t0) {
		t.Errorf("sessions_sweep: next_run_at %v, want within 15 s of %v", sweep.NextRunAt, t0)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		if mf.GetName() == "fabgate_job_running" {
			series = len(mf.GetMetric())
		}
	}
	if series != 4 {
		t.Errorf("fabgate_job_running has %d series, want one per job (4)", series)
	}
}
