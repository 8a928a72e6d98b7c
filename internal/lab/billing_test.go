package lab

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
)

func TestDuePeriods(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	at := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, paris) }
	p := func(y int, m time.Month) fablab.Period { return fablab.Period{Year: y, Month: m} }
	for _, tc := range []struct {
		name       string
		since, now time.Time
		want       []fablab.Period
	}{
		{"same month", at(2026, 3, 2, 9, 0), at(2026, 3, 31, 23, 59), nil},
		{"before 02:00 on the 1st", at(2026, 3, 2, 9, 0), at(2026, 4, 1, 1, 59), nil},
		{"at 02:00 on the 1st", at(2026, 3, 2, 9, 0), at(2026, 4, 1, 2, 0), []fablab.Period{p(2026, 3)}},
		{"down over the month change", at(2026, 3, 30, 18, 0), at(2026, 4, 3, 8, 0), []fablab.Period{p(2026, 3)}},
		{"down three months, over the year", at(2025, 11, 20, 0, 0), at(2026, 2, 10, 0, 0), []fablab.Period{p(2025, 11), p(2025, 12), p(2026, 1)}},
		{"started on the 1st before 02:00", at(2026, 4, 1, 1, 0), at(2026, 4, 1, 3, 0), []fablab.Period{p(2026, 3)}},
		{"started on the 1st after 02:00", at(2026, 4, 1, 2, 30), at(2026, 4, 20, 3, 0), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DuePeriods(tc.since, tc.now, paris); !slices.Equal(got, tc.want) {
				t.Errorf("DuePeriods(%s, %s) = %v, want %v", tc.since, tc.now, got, tc.want)
			}
		})
	}
}

// TestRunDueInvoicesCatchesUpOnce: a lab that started invoicing in March
// and was down over the change to April issues March's invoices when it
// comes back, once, however often the job runs.
func TestRunDueInvoicesCatchesUpOnce(t *testing.T) {
	ctx := context.Background()
	paris, _ := time.LoadLocation("Europe/Paris")
	clock := bolttest.NewClock(time.Date(2026, 3, 10, 9, 0, 0, 0, paris))
	s := bolttest.Open(t, clock.Now)
	if ran, err := RunDueInvoices(ctx, s, clock.Now()); err != nil || len(ran) != 0 {
		t.Fatalf("first run in March: %v, %v", ran, err)
	}
	clock.Set(time.Date(2026, 4, 2, 10, 0, 0, 0, paris)) // back after the month change
	ran, err := RunDueInvoices(ctx, s, clock.Now())
	if err != nil || !slices.Equal(ran, []fablab.Period{{Year: 2026, Month: time.March}}) {
		t.Fatalf("catch-up: %v, %v; want March", ran, err)
	}
	if done, err := s.InvoicesRun(ctx, fablab.Period{Year: 2026, Month: time.March}); err != nil || !done {
		t.Fatalf("March run recorded: %v %v", done, err)
	}
	if ran, err := RunDueInvoices(ctx, s, clock.Now()); err != nil || len(ran) != 0 {
		t.Errorf("second run: %v, %v; want nothing", ran, err)
	}
}
