package demo

import (
	"fmt"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/booking"
	"github.com/fabgate/fabgate/internal/fablab"
)

// History is what the demo's past looks like: the two months before the
// one of now. The older month is invoiced (makers find a real invoice on
// their charges page); the last one is billed but not invoiced, so that
// staff run its invoices themselves from the invoices page.
//
// Each open day, each machine with slots keeps about one slot in four,
// booked by the next maker who may use it. Most bookings were used (a
// session of the booking's time give or take a few minutes, ended by a tap
// or by the booking's end); one in ten was cancelled, one in ten never
// claimed (a no-show, with the machine's fee).

// seedHistory writes the two past months and bills them.
func (sd *seeder) seedHistory() error {
	loc := sd.st.Location()
	this := fablab.PeriodOf(sd.now, loc)
	older := this.Prev().Prev() // the last month, this.Prev(), is billed and left to staff to invoice
	from, to := older.Start(loc), this.Start(loc)
	if week := booking.WeekOf(&sd.st, sd.now); week.Start.Before(to) {
		to = week.Start // the demo week is booked apart (seedBookings)
	}
	open := booking.OpenIntervals(&sd.st, from, to)

	var makers []fablab.Member
	for _, m := range sd.members {
		if m.Role == fablab.RoleMaker {
			makers = append(makers, m)
		}
	}
	k := 0
	for mi, spec := range machines {
		m := sd.machines[mi]
		if m.State != fablab.MachineAvailable || len(spec.slots) == 0 {
			continue
		}
		next := (3 * mi) % len(makers)
		for d := fablab.DateOf(from.In(loc)); d.In(loc).Before(to); d = d.AddDays(1) {
			for si, sl := range spec.slots {
				if (d.Day+mi+si)%4 != 0 {
					continue
				}
				iv := fablab.Interval{Start: d.At(sl.start, loc)}
				iv.End = iv.Start.Add(time.Duration(sl.mins) * time.Minute)
				if !fitsRules(m.Rules, sl) || !insideOne(open, iv) {
					continue
				}
				for j := range makers {
					who := makers[(next+j)%len(makers)]
					if !sd.mayUse(who, m, iv) {
						continue
					}
					next = (next + j + 1) % len(makers)
					if err := sd.pastBooking(m, who, iv, k); err != nil {
						return fmt.Errorf("%s %s: %w", m.Name, iv.Start.In(loc).Format("2006-01-02 15:04"), err)
					}
					k++
					break
				}
			}
		}
	}
	for {
		_, left, err := sd.s.BillSessions(sd.ctx, 500)
		if err != nil {
			return err
		}
		if left == 0 {
			break
		}
	}
	// The unclaimed bookings become no-shows, each with its machine's fee.
	if _, err := sd.s.MarkNoShows(sd.ctx, to, to.Sub(from)); err != nil {
		return err
	}
	if _, _, err := sd.s.RunInvoices(sd.ctx, older); err != nil {
		return fmt.Errorf("invoices of %s: %w", older, err)
	}
	return nil
}

// pastBooking writes booking k of the history and what became of it.
func (sd *seeder) pastBooking(m fablab.Machine, who fablab.Member, iv fablab.Interval, k int) error {
	b, err := sd.s.CreateBooking(sd.ctx, fablab.Booking{MachineID: m.ID, MemberID: who.ID, Start: iv.Start, End: iv.End, CreatedBy: who.ID},
		func(bolt.BookingContext) error { return nil })
	if err != nil {
		return err
	}
	keep := func(fablab.Machine, fablab.Booking) error { return nil }
	switch k % 10 {
	case 3: // cancelled the day before
		_, err = sd.s.SetBookingState(sd.ctx, b.ID, fablab.BookingCancelled, who.ID, keep)
		return err
	case 7: // never claimed: MarkNoShows releases it
		return nil
	}
	start := iv.Start.Add(time.Duration(k%3) * 5 * time.Minute)
	end, reason := iv.End.Add(-time.Duration(k%4)*10*time.Minute), fablab.EndReason(fablab.EndTapOut)
	if k%4 == 0 {
		end, reason = iv.End, fablab.EndBookingEnd
	}
	if _, err := sd.s.RecordSession(sd.ctx, fablab.Session{
		MachineID: m.ID, MemberID: who.ID, BookingID: b.ID, DeviceID: m.DeviceID, Started: start, Until: iv.End,
		Ended: &end, EndReason: reason, Confirmed: true, Billable: true,
	}, nil, nil); err != nil {
		return err
	}
	_, err = sd.s.SetBookingState(sd.ctx, b.ID, fablab.BookingCompleted, who.ID, keep)
	return err
}
