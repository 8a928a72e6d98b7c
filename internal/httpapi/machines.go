package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/booking"
	"github.com/fabgate/fabgate/internal/fablab"
)

// machineRequest is the body of POST /machines; PATCH takes the same fields,
// all optional.
type machineRequest struct {
	Name               *string                      `json:"name"`
	Kind               *string                      `json:"kind"`
	Description        *string                      `json:"description"`
	RequiredTrainings  *[]fablab.ID                 `json:"required_trainings"`
	DeviceID           *string                      `json:"device_id"`
	State              *string                      `json:"state"`
	Rules              partial[fablab.BookingRules] `json:"rules"`
	Prices             *map[string]int64            `json:"prices"`
	MinimumChargeCents *int64                       `json:"minimum_charge_cents"`
	NoShowFeeCents     *int64                       `json:"no_show_fee_cents"`
	GraceMinutes       *int                         `json:"grace_minutes"`
	IdlePowerW         *float64                     `json:"idle_power_w"`
	Maintenance        *[]fablab.MaintenanceBlock   `json:"maintenance"`
}

func (r *machineRequest) apply(m *fablab.Machine) {
	set(&m.Name, r.Name)
	set(&m.Kind, r.Kind)
	set(&m.Description, r.Description)
	set(&m.RequiredTrainings, r.RequiredTrainings)
	set(&m.DeviceID, r.DeviceID)
	set(&m.State, r.State)
	r.Rules.mergeInto(&m.Rules)
	set(&m.Prices, r.Prices)
	set(&m.MinimumChargeCents, r.MinimumChargeCents)
	set(&m.NoShowFeeCents, r.NoShowFeeCents)
	set(&m.GraceMinutes, r.GraceMinutes)
	set(&m.IdlePowerW, r.IdlePowerW)
	set(&m.Maintenance, r.Maintenance)
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func (s *Server) listMachines(c *gin.Context) {
	p, err := s.store.Machines(c.Request.Context(), 0, 10_000)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p.Items)
}

func (s *Server) createMachine(c *gin.Context) {
	var req machineRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Name == nil || req.Kind == nil {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "name and kind are required"))
		return
	}
	st, err := s.store.Settings(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	// Rules given in part complete the lab's defaults.
	m := fablab.Machine{Rules: st.DefaultRules}
	if err := authorize(c, nil, req.adminTouches(m)); err != nil {
		s.fail(c, err)
		return
	}
	req.apply(&m)
	m, err = s.store.CreateMachine(c.Request.Context(), m)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.accessChanged()
	s.log.Info("machine created", "machine", m.ID, "by", member(c).ID)
	c.JSON(http.StatusCreated, m)
}

func (s *Server) getMachine(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	m, err := s.store.Machine(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, m)
}

func (s *Server) patchMachine(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	var req machineRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	m, err := s.store.UpdateMachine(c.Request.Context(), id, func(m *fablab.Machine) error {
		if err := authorize(c, nil, req.adminTouches(*m)); err != nil {
			return err
		}
		req.apply(m)
		return nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.accessChanged()
	s.log.Info("machine updated", "machine", id, "by", member(c).ID)
	c.JSON(http.StatusOK, m)
}

type availabilityResponse struct {
	MachineID fablab.ID         `json:"machine_id"`
	From      time.Time         `json:"from"`
	To        time.Time         `json:"to"`
	TimeZone  string            `json:"time_zone"`
	Free      []fablab.Interval `json:"free"`
	Busy      []fablab.Interval `json:"busy"`
}

func (s *Server) availability(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := pathID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	from, to, err := queryRange(c, s.now().UTC().Truncate(time.Minute), 7*24*time.Hour)
	if err != nil {
		s.fail(c, err)
		return
	}
	cal, err := s.store.Calendar(ctx, id, from, to)
	if err != nil {
		s.fail(c, err)
		return
	}
	st := &cal.Settings
	free, busy := booking.Availability(st, &cal.Machine, cal.Occupied, from, to)
	resp := availabilityResponse{MachineID: id, From: from.In(st.Location()), To: to.In(st.Location()), TimeZone: st.TimeZone, Free: free, Busy: busy}
	bp := bodyBuffers.Get().(*[]byte)
	body := resp.appendJSON((*bp)[:0])
	// With its length known the body goes out in one piece, not chunked.
	c.Header("Content-Length", strconv.Itoa(len(body)))
	c.Data(http.StatusOK, "application/json; charset=utf-8", body)
	if cap(body) <= maxPooledBody {
		*bp = body
		bodyBuffers.Put(bp)
	}
}

// bodyBuffers recycles the availability documents' buffers: net/http has
// copied a body once Data returns, and calendars poll this endpoint.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// maxPooledBody keeps a rare huge document's buffer out of the pool.
const maxPooledBody = 256 << 10

// MarshalJSON writes the availability document directly: it is the hottest
// read of the API (calendars poll it), and encoding/json's reflection and
// re-validation of time.Time output cost more than the lookup itself.
func (r *availabilityResponse) MarshalJSON() ([]byte, error) {
	// An interval takes 72 bytes: {"start":"2026-03-02T09:00:00+01:00","end":…},
	return r.appendJSON(make([]byte, 0, 160+72*(len(r.Free)+len(r.Busy)))), nil
}

// appendJSON appends the document to buf.
func (r *availabilityResponse) appendJSON(buf []byte) []byte {
	var tw rfc3339Writer
	buf = append(buf, `{"machine_id":"`...)
	buf = strconv.AppendUint(buf, uint64(r.MachineID), 10)
	buf = append(buf, `","from":`...)
	buf = tw.appendQuoted(buf, r.From)
	buf = append(buf, `,"to":`...)
	buf = tw.appendQuoted(buf, r.To)
	buf = append(buf, `,"time_zone":`...)
	buf = strconv.AppendQuote(buf, r.TimeZone)
	buf = append(buf, `,"free":`...)
	buf = tw.appendIntervals(buf, r.Free)
	buf = append(buf, `,"busy":`...)
	buf = tw.appendIntervals(buf, r.Busy)
	return append(buf, '}')
}

// rfc3339Writer formats instants as time.RFC3339 does, byte for byte, but
// looks a location's offset up once per zone period rather than once per
// instant, and writes a day's date once: the offset lookup and the calendar
// arithmetic are most of the cost of Time.AppendFormat, and the instants of
// one document share a zone period or two and a few days.
type rfc3339Writer struct {
	loc        *time.Location // of the period known; nil: none yet
	start, end time.Time      // the period (zero: unbounded on that side)
	off        int64          // its offset, seconds east of UTC
	suffix     []byte         // "Z" or "+01:00"
	day        int64          // the wall-clock day of date (days since 1970-01-01)
	date       []byte         // "2026-03-02T"; empty: none yet
}

// Wall-clock days whose date is written by the cached path: years 0001 to
// 9999, where the date is always "YYYY-MM-DD".
var (
	firstCachedDay = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix() / 86400
	lastCachedDay  = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).Unix() / 86400
)

func (w *rfc3339Writer) appendQuoted(buf []byte, t time.Time) []byte {
	buf = append(buf, '"')
	buf = w.append(buf, t)
	return append(buf, '"')
}

func (w *rfc3339Writer) append(buf []byte, t time.Time) []byte {
	if w.loc != t.Location() || !w.start.IsZero() && t.Before(w.start) || !w.end.IsZero() && !t.Before(w.end) {
		_, off := t.Zone()
		w.loc, w.off = t.Location(), int64(off)
		w.start, w.end = t.ZoneBounds()
		// The offset as RFC 3339 writes it: the layout's own output at
		// the zone period's offset.
		w.suffix = t.AppendFormat(w.suffix[:0], "Z07:00")
	}
	wall := t.Unix() + w.off // the wall clock's reading, as seconds since 1970
	day, sec := wall/86400, wall%86400
	if sec < 0 {
		day, sec = day-1, sec+86400
	}
	if day < firstCachedDay || day > lastCachedDay {
		// The wall time as a UTC instant formats without any lookup;
		// its "Z" is then replaced by the real offset.
		buf = time.Unix(wall, 0).UTC().AppendFormat(buf, time.RFC3339)
		return append(buf[:len(buf)-1], w.suffix...)
	}
	if day != w.day || len(w.date) == 0 {
		w.day, w.date = day, time.Unix(day*86400, 0).UTC().AppendFormat(w.date[:0], "2006-01-02T")
	}
	buf = append(buf, w.date...)
	buf = append(buf, byte('0'+sec/36000), byte('0'+sec/3600%10), ':',
		byte('0'+sec/600%6), byte('0'+sec/60%10), ':', byte('0'+sec%60/10), byte('0'+sec%10))
	return append(buf, w.suffix...)
}

func (w *rfc3339Writer) appendIntervals(buf []byte, ivs []fablab.Interval) []byte {
	buf = append(buf, '[')
	for i, iv := range ivs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"start":`...)
		buf = w.appendQuoted(buf, iv.Start)
		buf = append(buf, `,"end":`...)
		buf = w.appendQuoted(buf, iv.End)
		buf = append(buf, '}')
	}
	return append(buf, ']')
}
