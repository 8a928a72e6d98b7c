package lab

import (
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"
)

// newScheduler returns the lab's cron scheduler, in the lab's time zone
// (DESIGN §6): a job that panics is logged at error level with its stack and
// the scheduler goes on with the next runs; a run that would overlap the
// previous one of the same job is skipped.
//
// Recover goes inside SkipIfStillRunning: cron v3's skip wrapper marks a job
// finished only when it returns, so a panic going through it (Recover
// outside) left the job marked running, and every later run was skipped.
func newScheduler(loc *time.Location, log *slog.Logger) *cron.Cron {
	l := cronLogger{log: log.With("component", "cron")}
	return cron.New(cron.WithSeconds(), cron.WithLocation(loc), cron.WithLogger(l),
		cron.WithChain(cron.SkipIfStillRunning(l), cron.Recover(l)))
}

// cronLogger writes the scheduler's messages to slog: its errors (a job's
// panic, caught by cron.Recover) at error level, its routine messages (every
// wake-up and run, a skipped run) at debug level.
type cronLogger struct{ log *slog.Logger }

// Info logs a routine message at debug level.
func (l cronLogger) Info(msg string, keysAndValues ...any) {
	l.log.Debug("cron: "+msg, keysAndValues...)
}

// Error logs an error condition, such as a job's panic with its stack.
func (l cronLogger) Error(err error, msg string, keysAndValues ...any) {
	l.log.Error("cron: "+msg, append([]any{"err", err}, keysAndValues...)...)
}
