// Package jobs runs the server's scheduled jobs (DESIGN §6): each one a
// named func(ctx) error on a cron schedule in the lab's time zone, every run
// recorded (start, duration, outcome, error) for GET /api/v1/jobs and the
// Prometheus metrics, a panic caught and logged with its stack, and a run
// that would overlap the job's previous one skipped.
//
// The rule "one run of a job at a time" is one function (begin): a
// scheduled tick that finds its job running is recorded as skipped, a
// RunNow that finds it running is refused with ECONFLICT.
package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/fabgate/fabgate/internal/fablab"
)

// Job is a named, scheduled piece of work. Jobs are idempotent: a run may
// be skipped (the previous one still running) or repeated (RunNow), and the
// next run does what a missing one left.
type Job struct {
	// Name identifies the job in the status list, the metrics and
	// POST /api/v1/jobs/{name}/run: lower case, digits and underscores.
	Name string
	// Schedule is a cron spec with a seconds field, in the lab's time zone
	// ("*/15 * * * * *", "0 30 3 * * *", "0 0 2 1 * *"), or a descriptor
	// ("@hourly", "@daily", "@every 15s").
	Schedule string
	// Run does the work. A returned error is recorded and logged; a panic
	// is caught, logged with its stack and recorded.
	Run func(ctx context.Context) error
	// CatchUp, when set, runs once when the schedule starts, before the
	// job's first tick, for work keyed by period that a server down at the
	// scheduled time would otherwise miss (the monthly invoices). It is
	// recorded as a run of the job.
	CatchUp func(ctx context.Context) error
}

// Outcome is how a run ended.
type Outcome string

// The outcomes of a run.
const (
	OutcomeOK      Outcome = "ok"
	OutcomeError   Outcome = "error"   // Run returned an error
	OutcomePanic   Outcome = "panic"   // Run panicked (a failure, like an error)
	OutcomeSkipped Outcome = "skipped" // the scheduled tick found the job still running
)

var outcomes = []Outcome{OutcomeOK, OutcomeError, OutcomePanic, OutcomeSkipped}

// Trigger is what started a run.
type Trigger string

// The triggers of a run.
const (
	TriggerSchedule Trigger = "schedule"
	TriggerCatchUp  Trigger = "catch_up"
	TriggerManual   Trigger = "manual" // RunNow
)

// JobStatus is what the registry knows of one job: its schedule, its last
// recorded run (the last to finish, or a skipped tick) and its counts.
type JobStatus struct {
	Name     string `json:"name"`
	Schedule string `json:"schedule"`
	// Running says a run is under way, started at RunningSince.
	Running      bool       `json:"running"`
	RunningSince *time.Time `json:"running_since,omitempty"`
	// Runs counts the runs made (skipped ticks apart), Failures those that
	// ended in an error or a panic, Skips the ticks skipped.
	Runs     int64 `json:"runs"`
	Failures int64 `json:"failures"`
	Skips    int64 `json:"skips"`
	// The last recorded run: absent until there is one.
	LastRunAt      *time.Time `json:"last_run_at,omitempty"`
	LastDurationMS *int64     `json:"last_duration_ms,omitempty"`
	LastOutcome    Outcome    `json:"last_outcome,omitempty"`
	LastTrigger    Trigger    `json:"last_trigger,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	// LastSuccessAt is when the last successful run ended.
	LastSuccessAt *time.Time `json:"last_success_at,omitempty"`
	// NextRunAt is the job's next scheduled time (absent while the
	// schedule is not started).
	NextRunAt *time.Time `json:"next_run_at,omitempty"`
}

// Config configures a Registry.
type Config struct {
	// Location is the time zone of the schedules (default UTC).
	Location *time.Location
	// Now is the clock of every time recorded (default time.Now).
	Now func() time.Time
	Log *slog.Logger
	// Metrics, when set, receives the jobs' metrics.
	Metrics prometheus.Registerer
}

// Registry holds the jobs and runs them on their schedules once started.
type Registry struct {
	loc  *time.Location
	now  func() time.Time
	log  *slog.Logger
	cron *cron.Cron
	m    metrics

	// ctx is the context of scheduled and catch-up runs, cancelled by Stop.
	ctx    context.Context
	cancel context.CancelFunc
	// runs counts the runs under way, which Stop waits for.
	runs     sync.WaitGroup
	stopOnce sync.Once
	// life orders starting the scheduler (and adding to it) with stopping
	// it: nothing is scheduled once Stop has begun.
	life sync.Mutex

	mu      sync.Mutex // guards what follows and every entry's fields
	entries map[string]*entry
	order   []*entry
	started bool
	stopped bool
}

// entry is a registered job with its record.
type entry struct {
	job   Job
	sched cron.Schedule
	id    cron.EntryID // set once scheduled

	running      bool
	runningSince time.Time
	runs         int64
	failures     int64
	skips        int64
	last         *run
	lastSuccess  time.Time
}

// run is the record of one run.
type run struct {
	at       time.Time
	duration time.Duration
	outcome  Outcome
	trigger  Trigger
	err      string
}

// parser reads schedules as the scheduler runs them: a seconds field first.
var parser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// New returns an empty registry, its metrics registered.
func New(cfg Config) (*Registry, error) {
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{loc: cfg.Location, now: cfg.Now, log: cfg.Log, m: newMetrics(), entries: map[string]*entry{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	l := cronLogger{log: cfg.Log}
	r.cron = cron.New(cron.WithParser(parser), cron.WithLocation(cfg.Location), cron.WithLogger(l))
	if cfg.Metrics != nil {
		if err := r.m.register(cfg.Metrics); err != nil {
			return nil, fmt.Errorf("jobs: metrics: %w", err)
		}
	}
	return r, nil
}

// Add registers a job. Added before Start, it is scheduled (and caught up)
// at Start; added after, it is caught up at once and scheduled. Errors:
// EINVALID (no name, no Run, a bad schedule), ECONFLICT (the name is
// taken).
func (r *Registry) Add(j Job) error {
	if !validName(j.Name) {
		return fablab.Errorf(fablab.EINVALID, "job name %q: use lower-case letters, digits and underscores, such as sessions_sweep", j.Name).On("name")
	}
	if j.Run == nil {
		return fablab.Errorf(fablab.EINVALID, "job %s has no Run function", j.Name).On("run")
	}
	sched, err := parser.Parse(j.Schedule)
	if err != nil {
		return fablab.Errorf(fablab.EINVALID, "job %s: schedule %q: %v (write a cron spec with seconds, such as \"0 30 3 * * *\", or \"@every 15s\")", j.Name, j.Schedule, err).On("schedule")
	}
	e := &entry{job: j, sched: sched}
	r.mu.Lock()
	if _, dup := r.entries[j.Name]; dup {
		r.mu.Unlock()
		return fablab.Errorf(fablab.ECONFLICT, "a job named %s is already registered: give this one another name", j.Name).On("name")
	}
	r.entries[j.Name] = e
	r.order = append(r.order, e)
	started := r.started && !r.stopped
	r.mu.Unlock()
	r.m.init(j.Name)
	if started {
		r.catchUp(e)
		r.life.Lock()
		if !r.isStopped() {
			r.schedule(e)
		}
		r.life.Unlock()
	}
	return nil
}

// validName reports whether name is lower-case letters, digits and
// underscores (it appears in URLs and metric labels as it is).
func validName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// Start runs the catch-ups of the jobs that have one, in the order the jobs
// were added, then starts the schedule. It returns once the catch-ups are
// done; their failures are recorded and logged, not returned. A second
// Start does nothing.
func (r *Registry) Start() {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return
	}
	r.started = true
	order := append([]*entry(nil), r.order...)
	r.mu.Unlock()
	for _, e := range order {
		r.catchUp(e)
	}
	r.life.Lock()
	defer r.life.Unlock()
	if r.isStopped() {
		return // stopped during the catch-ups
	}
	for _, e := range order {
		r.schedule(e)
	}
	r.cron.Start()
}

// Stop stops the schedule, cancels the context of the runs under way and
// waits for them to return. It may be called more than once, and without
// Start.
func (r *Registry) Stop() {
	r.stopOnce.Do(func() {
		r.life.Lock()
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		stopped := r.cron.Stop()
		r.life.Unlock()
		r.cancel()
		<-stopped.Done()
		r.runs.Wait()
	})
}

func (r *Registry) isStopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped
}

func (r *Registry) catchUp(e *entry) {
	if e.job.CatchUp != nil {
		_ = r.execute(r.ctx, e, TriggerCatchUp, e.job.CatchUp)
	}
}

func (r *Registry) schedule(e *entry) {
	id := r.cron.Schedule(e.sched, cron.FuncJob(func() {
		_ = r.execute(r.ctx, e, TriggerSchedule, e.job.Run)
	}))
	r.mu.Lock()
	e.id = id
	r.mu.Unlock()
}

// RunNow runs the job once, now, on the caller's goroutine, recorded like
// a scheduled run. Its context ends with ctx or at Stop. Errors: ENOTFOUND
// (no such job), ECONFLICT (the job is running); a run that fails returns
// a *Failed.
func (r *Registry) RunNow(ctx context.Context, name string) error {
	r.mu.Lock()
	e := r.entries[name]
	r.mu.Unlock()
	if e == nil {
		return fablab.Errorf(fablab.ENOTFOUND, "there is no job named %q (GET /api/v1/jobs lists them)", name)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.ctx, cancel)()
	return r.execute(ctx, e, TriggerManual, e.job.Run)
}

// Failed is the error of a run that failed: the job's error or its panic.
type Failed struct {
	Job     string
	Outcome Outcome // OutcomeError or OutcomePanic
	Err     error
}

func (f *Failed) Error() string { return fmt.Sprintf("job %s: %s: %v", f.Job, f.Outcome, f.Err) }
func (f *Failed) Unwrap() error { return f.Err }

// begin claims the job for a run starting at start, unless it is running:
// the one "skip if still running" rule of scheduled ticks and RunNow alike.
// A run claimed before Stop is counted in r.runs, which Stop waits for
// (tracked); one after Stop (a late RunNow) is not.
func (r *Registry) begin(e *entry, start time.Time) (since time.Time, ok, tracked bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.running {
		return e.runningSince, false, false
	}
	e.running, e.runningSince = true, start
	if !r.stopped {
		r.runs.Add(1)
		tracked = true
	}
	return start, true, tracked
}

// execute runs fn as a run of e started by trigger and records it. A tick
// that finds the job running is recorded as skipped; any trigger then gets
// ECONFLICT.
func (r *Registry) execute(ctx context.Context, e *entry, trigger Trigger, fn func(context.Context) error) error {
	name := e.job.Name
	start := r.now()
	since, ok, tracked := r.begin(e, start)
	if !ok {
		r.skipped(e, start, trigger, since)
		return fablab.Errorf(fablab.ECONFLICT, "job %s is running (since %s): try again once it has finished", name, since.In(r.loc).Format(time.RFC3339))
	}
	if tracked {
		defer r.runs.Done()
	}
	r.m.running.WithLabelValues(name).Set(1)
	outcome, err := call(fn, ctx)
	end := r.now()
	d := end.Sub(start)
	if d < 0 {
		d = 0
	}
	rec := &run{at: start, duration: d, outcome: outcome, trigger: trigger}
	if err != nil {
		rec.err = err.Error()
	}
	r.mu.Lock()
	e.running = false
	e.runs++
	if outcome != OutcomeOK {
		e.failures++
	} else {
		e.lastSuccess = end
	}
	e.last = rec
	r.mu.Unlock()

	r.m.running.WithLabelValues(name).Set(0)
	r.m.runs.WithLabelValues(name, string(outcome)).Inc()
	r.m.duration.WithLabelValues(name).Observe(d.Seconds())
	switch {
	case outcome == OutcomeOK:
		r.m.lastSuccess.WithLabelValues(name).Set(float64(end.Unix()) + float64(end.Nanosecond())/1e9)
		r.log.Debug("job done", "job", name, "trigger", trigger, "duration", d)
		return nil
	case outcome == OutcomePanic:
		p := err.(*panicked)
		r.log.Error("job panicked", "job", name, "trigger", trigger, "panic", p.value, "stack", p.stack)
	case ctx.Err() != nil:
		// Stopped (the server shutting down) or abandoned by its caller.
		r.log.Warn("job cancelled", "job", name, "trigger", trigger, "duration", d, "err", err)
	default:
		r.log.Error("job failed", "job", name, "trigger", trigger, "duration", d, "err", err)
	}
	return &Failed{Job: name, Outcome: outcome, Err: err}
}

// skipped records a tick (or catch-up) that found the job running; a
// refused RunNow is the caller's to report, not a run of the job.
func (r *Registry) skipped(e *entry, at time.Time, trigger Trigger, since time.Time) {
	if trigger == TriggerManual {
		return
	}
	name := e.job.Name
	r.mu.Lock()
	e.skips++
	e.last = &run{at: at, outcome: OutcomeSkipped, trigger: trigger,
		err: "still running since " + since.In(r.loc).Format(time.RFC3339)}
	r.mu.Unlock()
	r.m.runs.WithLabelValues(name, string(OutcomeSkipped)).Inc()
	r.log.Warn("job skipped: still running", "job", name, "trigger", trigger, "running_since", since)
}

// panicked is the error of a run that panicked.
type panicked struct {
	value any
	stack string
}

func (p *panicked) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// call runs fn, turning a panic into a *panicked error.
func call(fn func(context.Context) error, ctx context.Context) (outcome Outcome, err error) {
	defer func() {
		if v := recover(); v != nil {
			outcome, err = OutcomePanic, &panicked{value: v, stack: string(debug.Stack())}
		}
	}()
	if err := fn(ctx); err != nil {
		return OutcomeError, err
	}
	return OutcomeOK, nil
}

// Status returns the status of every job, in the order they were added.
func (r *Registry) Status() []JobStatus {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]JobStatus, 0, len(r.order))
	for _, e := range r.order {
		out = append(out, r.status(e, now))
	}
	return out
}

// JobStatus returns the status of the named job. Errors: ENOTFOUND.
func (r *Registry) JobStatus(name string) (JobStatus, error) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[name]
	if e == nil {
		return JobStatus{}, fablab.Errorf(fablab.ENOTFOUND, "there is no job named %q (GET /api/v1/jobs lists them)", name)
	}
	return r.status(e, now), nil
}

// status reads e (r.mu held).
func (r *Registry) status(e *entry, now time.Time) JobStatus {
	s := JobStatus{Name: e.job.Name, Schedule: e.job.Schedule, Running: e.running, Runs: e.runs, Failures: e.failures, Skips: e.skips}
	if e.running {
		s.RunningSince = r.at(e.runningSince)
	}
	if l := e.last; l != nil {
		s.LastRunAt = r.at(l.at)
		ms := l.duration.Milliseconds()
		s.LastDurationMS = &ms
		s.LastOutcome, s.LastTrigger, s.LastError = l.outcome, l.trigger, l.err
	}
	if !e.lastSuccess.IsZero() {
		s.LastSuccessAt = r.at(e.lastSuccess)
	}
	if r.started && !r.stopped {
		s.NextRunAt = r.at(r.next(e, now))
	}
	return s
}

// next is e's next scheduled time as the clock reads. A cron spec names
// it from now; an @every schedule counts from when the scheduler last ran
// the job, which only the scheduler knows (by the system clock): its next
// time is moved into the clock's frame.
func (r *Registry) next(e *entry, now time.Time) time.Time {
	if _, every := e.sched.(cron.ConstantDelaySchedule); every && e.id != 0 {
		if n := r.cron.Entry(e.id).Next; !n.IsZero() {
			return n.Add(time.Until(now))
		}
	}
	return e.sched.Next(now.In(r.loc))
}

// at returns t in the lab's time zone, to the millisecond.
func (r *Registry) at(t time.Time) *time.Time {
	t = t.In(r.loc).Truncate(time.Millisecond)
	return &t
}

// cronLogger writes the scheduler's messages to slog: its errors at error
// level, its routine messages (every wake-up and run) at debug level.
type cronLogger struct{ log *slog.Logger }

// Info logs a routine message at debug level.
func (l cronLogger) Info(msg string, keysAndValues ...any) {
	l.log.Debug("cron: "+msg, keysAndValues...)
}

// Error logs an error condition.
func (l cronLogger) Error(err error, msg string, keysAndValues ...any) {
	l.log.Error("cron: "+msg, append([]any{"err", err}, keysAndValues...)...)
}
