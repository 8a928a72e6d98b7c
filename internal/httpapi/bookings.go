package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/booking"
	"github.com/fabgate/fabgate/internal/fablab"
)

// bookingRequest is the body of POST /bookings. Staff may book for another
// member with member_id.
type bookingRequest struct {
	MachineID fablab.ID `json:"machine_id"`
	MemberID  fablab.ID `json:"member_id"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
}

// validate checks the shape of a booking request before it reaches the store.
func (r *bookingRequest) validate() error {
	switch {
	case r.MachineID == 0:
		return fablab.Errorf(fablab.EINVALID, "machine_id is required")
	case r.Start.IsZero() || r.End.IsZero():
		return fablab.Errorf(fablab.EINVALID, "start and end are required (RFC 3339 times)")
	case checkInstant("start", r.Start) != nil:
		return checkInstant("start", r.Start)
	case checkInstant("end", r.End) != nil:
		return checkInstant("end", r.End)
	case !r.End.After(r.Start):
		return fablab.Errorf(fablab.EINVALID, "end must be after start")
	case r.End.Sub(r.Start) > fablab.MaxBookingMinutes*time.Minute:
		return fablab.Errorf(fablab.EINVALID, "a booking cannot last more than %d days", fablab.MaxBookingMinutes/(24*60))
	}
	return nil
}

func (s *Server) createBooking(c *gin.Context) {
	ctx := c.Request.Context()
	var req bookingRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := req.validate(); err != nil {
		s.fail(c, err)
		return
	}
	me := member(c)
	staff := isStaff(c)
	if req.MemberID == 0 {
		req.MemberID = me.ID
	}
	if req.MemberID != me.ID && !staff {
		s.fail(c, fablab.Errorf(fablab.EFORBIDDEN, "makers book for themselves only; leave member_id out"))
		return
	}
	now := s.now()
	b, err := s.store.CreateBooking(ctx, fablab.Booking{MachineID: req.MachineID, MemberID: req.MemberID, Start: req.Start, End: req.End, CreatedBy: me.ID},
		func(bc bolt.BookingContext) error {
			if bc.Member.ID != me.ID {
				// Staff book for makers; for a staff or admin account,
				// an admin (read in the booking's own transaction).
				if err := authorize(c, bc.Member, nil); err != nil {
					return err
				}
			}
			r := booking.Request{Start: req.Start, End: req.End, Machine: bc.Machine, Member: bc.Member, Qualifications: bc.Qualifications, ByStaff: staff}
			used := 0
			if bc.Machine.Rules.WeeklyQuotaMinutes > 0 && !staff {
				week := booking.WeekOf(bc.Settings, req.Start)
				var err error
				if used, err = bc.MemberMinutes(week.Start, week.End); err != nil {
					return err
				}
			}
			return booking.Check(bc.Settings, r, now, used)
		})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("booking created", "booking", b.ID, "machine", b.MachineID, "member", b.MemberID, "by", me.ID)
	if s.mail != nil {
		s.mail.BookingConfirmed(ctx, b)
	}
	c.JSON(http.StatusCreated, b)
}

func (s *Server) listBookings(c *gin.Context) {
	me := member(c)
	machineID, err := queryID(c, "machine_id")
	if err != nil {
		s.fail(c, err)
		return
	}
	memberID, err := queryID(c, "member_id")
	if err != nil {
		s.fail(c, err)
		return
	}
	if !isStaff(c) {
		if memberID != 0 && memberID != me.ID {
			s.fail(c, fablab.Errorf(fablab.EFORBIDDEN, "makers see only their own bookings; other people's show as busy time in /machines/{id}/availability"))
			return
		}
		memberID = me.ID
	}
	if machineID == 0 && memberID == 0 {
		memberID = me.ID
	}
	from, to, err := queryRange(c, s.now().UTC().Add(-24*time.Hour), 60*24*time.Hour)
	if err != nil {
		s.fail(c, err)
		return
	}
	f := bolt.BookingFilter{From: from, To: to}
	if memberID != 0 {
		f.MemberID = memberID
	} else {
		f.MachineID = machineID
	}
	bs, err := s.store.Bookings(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	if memberID != 0 && machineID != 0 {
		kept := bs[:0]
		for _, b := range bs {
			if b.MachineID == machineID {
				kept = append(kept, b)
			}
		}
		bs = kept
	}
	c.JSON(http.StatusOK, bs)
}

// visibleBooking loads a booking the caller may see: their own, or any for staff.
// Others' bookings are reported as not found.
func (s *Server) visibleBooking(c *gin.Context) (fablab.Booking, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return fablab.Booking{}, err
	}
	b, err := s.store.Booking(c.Request.Context(), id)
	if err != nil {
		return b, err
	}
	if b.MemberID != member(c).ID && !isStaff(c) {
		return fablab.Booking{}, fablab.Errorf(fablab.ENOTFOUND, "booking %s does not exist", id)
	}
	return b, nil
}

func (s *Server) getBooking(c *gin.Context) {
	b, err := s.visibleBooking(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, b)
}

func (s *Server) cancelBooking(c *gin.Context) {
	b, err := s.visibleBooking(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	staff, now, me := isStaff(c), s.now(), member(c)
	if b.MemberID != me.ID {
		if err := s.authorizeOn(c, b.MemberID); err != nil {
			s.fail(c, err)
			return
		}
	}
	b, err = s.store.SetBookingState(c.Request.Context(), b.ID, fablab.BookingCancelled, me.ID, func(m fablab.Machine, cur fablab.Booking) error {
		return booking.CheckCancel(&m, &cur, now, staff)
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("booking cancelled", "booking", b.ID, "by", me.ID)
	if s.mail != nil {
		s.mail.BookingCancelled(c.Request.Context(), b)
	}
	c.JSON(http.StatusOK, b)
}
