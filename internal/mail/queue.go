package mail

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QueueConfig configures a Queue. Zero fields take the defaults given.
type QueueConfig struct {
	// Size bounds the messages waiting (default 1000): past it a message is
	// refused, logged and counted as failed, so that a mail server that is
	// down cannot make the queue grow without end.
	Size int
	// Tries is how many times a message is tried (default 6); Backoff is
	// the wait after the first failure, doubled after each further one up
	// to MaxBackoff (defaults 5 s and 5 min: six tries span about 2.5 min).
	Tries               int
	Backoff, MaxBackoff time.Duration
	Log                 *slog.Logger
	// Registry, when set, receives the fabgate_mail_* metrics.
	Registry prometheus.Registerer
}

// Queue sends messages through a Sender on a goroutine of its own, in the
// order they came, retrying failures with back-off: whoever queues a
// message never waits for the mail server. A message that cannot be sent
// after every try, or finds the queue full, is logged at error level with
// its recipient and subject, and counted in fabgate_mail_failed_total.
type Queue struct {
	sender Sender
	cfg    QueueConfig
	log    *slog.Logger

	mu     sync.RWMutex // guards closed against Enqueue sending on a closed channel
	closed bool
	ch     chan Message

	stop    context.Context // ends when Close gives up draining
	abort   context.CancelFunc
	done    chan struct{}
	sent    prometheus.Counter
	failed  prometheus.Counter
	retried prometheus.Counter
}

// NewQueue starts a queue sending through sender.
func NewQueue(sender Sender, cfg QueueConfig) (*Queue, error) {
	if cfg.Size <= 0 {
		cfg.Size = 1000
	}
	if cfg.Tries <= 0 {
		cfg.Tries = 6
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 5 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{
		sender: sender, cfg: cfg, log: cfg.Log, ch: make(chan Message, cfg.Size), done: make(chan struct{}),
		sent:    prometheus.NewCounter(prometheus.CounterOpts{Name: "fabgate_mail_sent_total", Help: "Mail messages delivered to the mail server (or the outbox)."}),
		failed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "fabgate_mail_failed_total", Help: "Mail messages given up on: every try failed, or the queue was full or closed."}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{Name: "fabgate_mail_retries_total", Help: "Failed tries to send a mail message that were tried again."}),
	}
	if cfg.Registry != nil {
		queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fabgate_mail_queued", Help: "Mail messages waiting to be sent."},
			func() float64 { return float64(len(q.ch)) })
		for _, c := range []prometheus.Collector{q.sent, q.failed, q.retried, queued} {
			if err := cfg.Registry.Register(c); err != nil {
				return nil, err
			}
		}
	}
	q.stop, q.abort = context.WithCancel(context.Background())
	go q.run()
	return q, nil
}

// Enqueue queues m and returns at once; false when the queue is full or
// closed (m is then logged and counted as failed).
func (q *Queue) Enqueue(m Message) bool {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if !q.closed {
		select {
		case q.ch <- m:
			return true
		default:
		}
	}
	q.failed.Inc()
	q.log.Error("mail not sent: queue full or closed", "to", m.To, "subject", m.Subject, "queued", len(q.ch))
	return false
}

// Close stops taking messages and sends those queued, until ctx ends;
// what is left then is logged and counted as failed, one by one. It
// returns ctx's error when it had to give up.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		q.abort()
		<-q.done
		return ctx.Err()
	}
}

func (q *Queue) run() {
	defer close(q.done)
	defer q.abort()
	for m := range q.ch {
		q.deliver(m)
	}
}

// deliver tries m until it is sent, every try failed, or Close gave up.
func (q *Queue) deliver(m Message) {
	wait := q.cfg.Backoff
	var err error
	for try := 1; ; try++ {
		if err = q.sender.Send(q.stop, m); err == nil {
			q.sent.Inc()
			q.log.Info("mail sent", "to", m.To, "subject", m.Subject, "tries", try)
			return
		}
		if try == q.cfg.Tries || q.stop.Err() != nil {
			break
		}
		q.retried.Inc()
		q.log.Warn("mail send failed; will try again", "to", m.To, "subject", m.Subject, "try", try, "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-q.stop.Done():
			t.Stop()
		}
		wait = min(2*wait, q.cfg.MaxBackoff)
	}
	q.failed.Inc()
	q.log.Error("mail not sent", "to", m.To, "subject", m.Subject, "err", err)
}
