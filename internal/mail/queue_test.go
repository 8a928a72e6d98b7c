package mail

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fabgate/fabgate/internal/logbuf"
	"github.com/fabgate/fabgate/internal/mail/mailtest"
)

// smtpQueue is a queue sending to srv, retrying quickly.
func smtpQueue(t *testing.T, srv *mailtest.Server, cfg QueueConfig) *Queue {
	t.Helper()
	u, err := ParseURL(srv.URL("smtp", "from=lab@fablab.test"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSMTP(u, SMTPOptions{TLS: &tls.Config{RootCAs: srv.Roots}, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewQueue(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()) })
	return q
}

// waitFor polls cond (a condition on real I/O) with a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestQueueRetries: a server that refuses twice gets the message on the
// third try; one that always refuses makes the queue give up, log it and
// count it.
func TestQueueRetries(t *testing.T) {
	srv := mailtest.Start(t, mailtest.StartTLS)
	logs := &logbuf.Buffer{}
	reg := prometheus.NewRegistry()
	q := smtpQueue(t, srv, QueueConfig{Tries: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Log: slog.New(slog.NewTextHandler(logs, nil)), Registry: reg})

	srv.Refuse(2)
	m := testMessage()
	if !q.Enqueue(m) {
		t.Fatal("enqueue refused")
	}
	got := srv.Wait(t, 1)
	if s := mailtest.DecodeHeader(t, got[0].Header.Get("Subject")); s != m.Subject {
		t.Errorf("delivered %q", s)
	}
	if r := counterValue(q.retried); r != 2 {
		t.Errorf("retries = %v, want 2", r)
	}
	waitFor(t, "the sent count", func() bool { return counterValue(q.sent) == 1 })

	srv.Refuse(3)
	m.Subject = "never delivered"
	q.Enqueue(m)
	waitFor(t, "the failure to be counted", func() bool { return counterValue(q.failed) == 1 })
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("the server holds %d messages, want 1", n)
	}
	if out := logs.String(); !strings.Contains(out, "mail not sent") || !strings.Contains(out, "never delivered") || !strings.Contains(out, "alice@fablab.test") {
		t.Errorf("the failure is not logged with its recipient and subject:\n%s", out)
	}
	families, err := reg.Gather()
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	if err != nil || strings.Join(names, " ") != "fabgate_mail_failed_total fabgate_mail_queued fabgate_mail_retries_total fabgate_mail_sent_total" {
		t.Errorf("registered metrics: %v, %v", names, err)
	}
}

// TestQueueBounded: past its size a queue refuses, and counts it.
func TestQueueBounded(t *testing.T) {
	srv := mailtest.Start(t, mailtest.Plain)
	srv.Refuse(1000)
	logs := &logbuf.Buffer{}
	// One try that waits for nothing: the first message is being refused
	// while the next two fill the queue.
	q := smtpQueue(t, srv, QueueConfig{Size: 2, Tries: 100, Backoff: time.Hour, Log: slog.New(slog.NewTextHandler(logs, nil))})
	accepted := 0
	for i := range 10 {
		m := testMessage()
		m.Subject = fmt.Sprint("message ", i)
		if q.Enqueue(m) {
			accepted++
		}
	}
	// The worker holds at most one, the channel two.
	if accepted > 3 || accepted < 2 {
		t.Errorf("accepted %d of 10 messages with room for 2 (+1 in hand)", accepted)
	}
	if f := counterValue(q.failed); int(f) != 10-accepted {
		t.Errorf("failed = %v, want %d", f, 10-accepted)
	}
	if !strings.Contains(logs.String(), "queue full") {
		t.Errorf("refusals not logged:\n%s", logs.String())
	}
	// Close gives up at once on an ended context: every message left is
	// counted as failed, none silently lost.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.Close(ctx); err == nil {
		t.Error("Close with an ended context reported no error")
	}
	if f := counterValue(q.failed); f != 10 {
		t.Errorf("failed = %v after giving up, want 10", f)
	}
	if q.Enqueue(testMessage()) {
		t.Error("a closed queue took a message")
	}
}

// TestQueueCloseDrains: Close sends what is queued before returning.
func TestQueueCloseDrains(t *testing.T) {
	out := NewOutbox(0)
	q, err := NewQueue(out, QueueConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		m := testMessage()
		m.Subject = fmt.Sprint(i)
		q.Enqueue(m)
	}
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	msgs := out.Messages()
	if len(msgs) != 50 || msgs[0].Subject != "49" || msgs[49].Subject != "0" {
		t.Fatalf("outbox holds %d messages after Close, want 50 newest first", len(msgs))
	}
}

func TestOutboxBounded(t *testing.T) {
	out := NewOutbox(3)
	for i := range 5 {
		out.Send(context.Background(), Message{Subject: fmt.Sprint(i)})
	}
	var got []string
	for _, m := range out.Messages() {
		got = append(got, m.Subject)
	}
	if strings.Join(got, ",") != "4,3,2" {
		t.Errorf("outbox keeps %v, want the last three newest first", got)
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
