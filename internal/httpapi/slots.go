package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/booking"
	"github.com/fabgate/fabgate/internal/fablab"
)

// maxSlotRange bounds how far a free-slot search looks (its to - from).
const maxSlotRange = 31 * 24 * time.Hour

// slots answers GET /slots: the earliest free ranges where the caller could
// book a machine of a kind (or one machine) for a given number of minutes,
// across machines, in start order (booking.FreeSlots decides). Machines the
// caller lacks a training for are listed with training_required, unless
// qualified=true leaves them out.
func (s *Server) slots(c *gin.Context) {
	ctx := c.Request.Context()
	me := member(c)
	kind := c.Query("kind")
	machineID, err := queryID(c, "machine_id")
	if err != nil {
		s.fail(c, err)
		return
	}
	if (kind == "") == (machineID == 0) {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "give either kind (e.g. kind=laser-cutter) or machine_id, not both").On("kind"))
		return
	}
	if c.Query("minutes") == "" {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "minutes is required: the length of the booking wanted, e.g. minutes=120").On("minutes"))
		return
	}
	minutes, err := queryInt(c, "minutes", 0, 1, fablab.MaxBookingMinutes)
	if err != nil {
		s.fail(c, err)
		return
	}
	limit, err := queryInt(c, "limit", 5, 1, 50)
	if err != nil {
		s.fail(c, err)
		return
	}
	qualifiedOnly, err := queryBool(c, "qualified")
	if err != nil {
		s.fail(c, err)
		return
	}
	from, to, err := queryRange(c, s.now().UTC(), 7*24*time.Hour)
	if err != nil {
		s.fail(c, err)
		return
	}
	if to.Sub(from) > maxSlotRange {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "a free-slot search looks at most 31 days ahead of from; ask for a shorter range").On("to"))
		return
	}

	st, err := s.store.Settings(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	var ms []fablab.Machine
	if machineID != 0 {
		m, err := s.store.Machine(ctx, machineID)
		if err != nil {
			s.fail(c, err)
			return
		}
		ms = []fablab.Machine{m}
	} else {
		p, err := s.store.Machines(ctx, 0, 10_000)
		if err != nil {
			s.fail(c, err)
			return
		}
		for _, m := range p.Items {
			// Retired machines and machines in maintenance offer nothing.
			if m.Kind == kind && m.State == fablab.MachineAvailable {
				ms = append(ms, m)
			}
		}
	}
	length := time.Duration(minutes) * time.Minute
	staff := isStaff(c)
	cals := make([]booking.MachineCalendar, len(ms))
	quota := false
	for i := range ms {
		cals[i].Machine = &ms[i]
		if ms[i].State != fablab.MachineAvailable {
			continue
		}
		if cals[i].Occupied, err = s.store.Occupied(ctx, ms[i].ID, from, to.Add(length)); err != nil {
			s.fail(c, err)
			return
		}
		quota = quota || ms[i].Rules.WeeklyQuotaMinutes > 0 && !staff
	}
	if quota {
		// The caller's own bookings in the weeks the search touches, for
		// the weekly quotas (counted in the week a booking starts).
		mine, err := s.store.Bookings(ctx, bolt.BookingFilter{
			MemberID: me.ID, OnlyOccupying: true,
			From: booking.WeekOf(&st, from).Start, To: booking.WeekOf(&st, to.Add(length)).End,
		})
		if err != nil {
			s.fail(c, err)
			return
		}
		for i := range cals {
			for _, b := range mine {
				if b.MachineID == cals[i].Machine.ID && b.Occupies() {
					cals[i].Mine = append(cals[i].Mine, b.Interval())
				}
			}
		}
	}
	quals, err := s.store.Qualifications(ctx, me.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	q := booking.SlotQuery{
		Member: &me, Qualifications: quals, ByStaff: staff, Minutes: minutes,
		From: from, To: to, Limit: limit, QualifiedOnly: qualifiedOnly,
	}
	found, refused := booking.FreeSlots(&st, q, cals, s.now())
	if machineID != 0 && refused[machineID] != nil {
		// Asked about one machine: say why it offers nothing.
		s.fail(c, refused[machineID])
		return
	}
	c.JSON(http.StatusOK, found)
}

// queryBool reads ?name=true|false (absent: false).
func queryBool(c *gin.Context, name string) (bool, error) {
	switch c.Query(name) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, fablab.Errorf(fablab.EINVALID, "query %s must be true or false", name).On(name)
}
