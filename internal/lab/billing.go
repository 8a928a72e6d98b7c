package lab

import (
	"context"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// The billing jobs (DESIGN §6). Both are idempotent: the store bills a
// session in the transaction that marks it billed, and a period's invoices
// are issued once.

// billBatch is how many sessions one billing transaction takes.
const billBatch = 500

// BillSessions bills every ended session not billed yet, in batches, and
// returns how many it charged.
func BillSessions(ctx context.Context, store *bolt.Store) (int, error) {
	total := 0
	for {
		n, left, err := store.BillSessions(ctx, billBatch)
		total += n
		if err != nil || left == 0 {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// InvoiceHour is the time of day (lab time, on the 1st) the monthly
// invoices are issued.
const InvoiceHour = 2

// DuePeriods returns the months whose invoice time (the 1st of the next
// month at InvoiceHour, lab time) lies in (since, now], oldest first: the
// runs a server that was down since since owes.
func DuePeriods(since, now time.Time, loc *time.Location) []fablab.Period {
	var out []fablab.Period
	p := fablab.PeriodOf(since, loc).Prev()
	for {
		at := p.End(loc).Add(InvoiceHour * time.Hour)
		if at.After(now) {
			return out
		}
		if at.After(since) {
			out = append(out, p)
		}
		p = p.Next()
	}
}

// RunDueInvoices issues the invoices of every month that ended since the
// lab started invoicing and has not been run: the scheduled monthly job
// and its catch-up after downtime are this one function. It returns the
// periods it ran.
func RunDueInvoices(ctx context.Context, store *bolt.Store, now time.Time) ([]fablab.Period, error) {
	since, err := store.InvoicingSince(ctx, now)
	if err != nil {
		return nil, err
	}
	st, err := store.Settings(ctx)
	if err != nil {
		return nil, err
	}
	// Sessions that ended before the month's end are billed first, so
	// they are on its invoices.
	if _, err := BillSessions(ctx, store); err != nil {
		return nil, err
	}
	var ran []fablab.Period
	for _, p := range DuePeriods(since, now, st.Location()) {
		done, err := store.InvoicesRun(ctx, p)
		if err != nil {
			return ran, err
		}
		if done {
			continue
		}
		if _, _, err := store.RunInvoices(ctx, p); err != nil {
			return ran, err
		}
		ran = append(ran, p)
	}
	return ran, nil
}
