// Package booking is FabGate's booking engine: when a machine can be booked
// (opening hours, closures, existing bookings, maintenance), whether a new
// booking obeys the machine's rules, and whether a booking may be cancelled.
//
// It is pure: no I/O, no clock of its own (callers pass now), only the standard
// library and internal/fablab. Overlap between bookings is not checked here;
// the store checks it inside its write transaction.
//
// All calendar logic is done in the lab's time zone, day by day, so that days
// of 23 or 25 hours come out right. An opening range [Open, Close) of day d is
// the span from the first instant of d at which the lab's wall clock reads Open
// or later to the first instant at which it reads Close or later. For ordinary
// wall times that is simply d.At(Open)…d.At(Close); it differs from what
// time.Date alone gives only for wall times inside a DST change:
//   - a wall time skipped by the spring change (02:30 in Paris) maps to the
//     instant of the change (03:00 CEST), not to 03:30 as time.Date would, so a
//     range ending at 02:30 does not stay open until 03:30;
//   - a wall time that occurs twice in the autumn (02:30 in Paris) maps to its
//     first occurrence, so the lab clock never "goes back": a range 00:00–02:30
//     closes at the first 02:30 and does not reopen during the repeated hour.
package booking

import (
	"math"
	"slices"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// OpenIntervals returns the lab's opening intervals intersecting [from,to),
// clipped to it, computed day by day in the lab time zone s.Location() from
// s.OpeningHours minus s.Closures (closure days are whole local days).
// Contiguous ranges (a day open until 24:00 and the next open from 00:00, or
// two touching ranges of one day) are merged into one interval. The result is
// sorted, never nil, and its instants are in the lab's location.
func OpenIntervals(s *fablab.Settings, from, to time.Time) []fablab.Interval {
	if !from.Before(to) {
		return []fablab.Interval{}
	}
	loc := s.Location()
	// One day of margin on each side costs nothing and keeps zones whose DST
	// change happens around midnight right.
	first := fablab.DateOf(from.In(loc)).AddDays(-1)
	last := fablab.DateOf(to.In(loc)).AddDays(1)
	out := make([]fablab.Interval, 0, 2*int(to.Sub(from)/(24*time.Hour))+6)
	wc := wallClock{loc: loc}
	for d := first; !last.Before(d); d = d.AddDays(1) {
		if s.ClosedOn(d) {
			continue
		}
		for _, r := range s.OpeningHours.Day(d.Weekday()) {
			iv := fablab.Interval{Start: wc.at(d, r.Open), End: wc.at(d, r.Close)}
			if iv, ok := clip(iv, from, to); ok {
				out = append(out, iv)
			}
		}
	}
	return inLocation(merge(out), loc)
}

// WeekOf returns the ISO week [Monday 00:00, next Monday 00:00) in the lab
// time zone that contains t. It lasts 167 or 169 hours in DST-change weeks.
func WeekOf(s *fablab.Settings, t time.Time) fablab.Interval {
	loc := s.Location()
	d := fablab.DateOf(t.In(loc))
	monday := d.AddDays(-((int(d.Weekday()) + 6) % 7))
	return fablab.Interval{Start: dayStart(monday, loc), End: dayStart(monday.AddDays(7), loc)}
}

// dayStart returns the first instant of day d in loc (midnight, or the instant
// of the change when a DST change skips midnight).
func dayStart(d fablab.Date, loc *time.Location) time.Time {
	return wallInstant(d, 0, loc)
}

// wallInstant returns the first instant of day d at which the wall clock in
// loc reads c or later; c = 24:00 is the first instant of the next day.
//
// time.Date (and so fablab.Date.At) already gives this for every wall time
// that occurs exactly once. It moves a skipped wall time forward by the length
// of the gap (02:30 → 03:30 CEST) where the wall clock first reads 02:30 "or
// later" at the change itself (03:00 CEST), and it picks the second of two
// occurrences of a repeated wall time where the first is wanted.
func wallInstant(d fablab.Date, c fablab.ClockTime, loc *time.Location) time.Time {
	if c >= 24*60 {
		return wallInstant(d.AddDays(1), 0, loc)
	}
	t := d.At(c, loc)
	start, end := t.ZoneBounds()
	if td := fablab.DateOf(t); td != d || minuteOfDay(t) != int(c) {
		// c was skipped by a forward change. time.Date moved it past the change
		// (east of UTC) or before it (west of UTC); either way the answer is the
		// instant of the change, which bounds t's zone period on that side.
		edge := start
		if td.Before(d) || td == d && minuteOfDay(t) < int(c) {
			edge = end
		}
		if edge.IsZero() {
			return t
		}
		return edge.In(loc)
	}
	if start.IsZero() {
		return t
	}
	_, off := t.Zone()
	_, prevOff := start.Add(-time.Nanosecond).Zone()
	if prevOff <= off {
		return t
	}
	// The clocks went back when t's period began: c may have occurred once
	// already, in the previous period.
	alt := t.Add(-time.Duration(prevOff-off) * time.Second).In(loc)
	if alt.Before(start) && fablab.DateOf(alt) == d && minuteOfDay(alt) == int(c) {
		return alt
	}
	return t
}

// wallClock is wallInstant for many days in a row, as calendars ask it:
// within one zone period (a span of one UTC offset) a wall time is plain
// arithmetic, and wallInstant, with its zone lookups, is needed only near a
// change. Arithmetic is trusted from 3 hours after the period began, more
// than any offset change, so that no wall time there was skipped, nor can
// it have occurred before the change too; up to the period's end it is the
// first occurrence, since the wall clock only repeats after the end.
type wallClock struct {
	loc      *time.Location
	known    bool
	off      int64 // seconds east of UTC in the period
	from, to int64 // Unix seconds where arithmetic is trusted: [from, to)
}

// at returns wallInstant(d, c, w.loc).
func (w *wallClock) at(d fablab.Date, c fablab.ClockTime) time.Time {
	if w.known {
		u := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC).Unix() + int64(c)*60 - w.off
		if u >= w.from && u < w.to {
			return time.Unix(u, 0).In(w.loc)
		}
	}
	t := wallInstant(d, c, w.loc)
	_, off := t.Zone()
	start, end := t.ZoneBounds()
	w.known, w.off, w.from, w.to = true, int64(off), math.MinInt64, math.MaxInt64
	if !start.IsZero() {
		w.from = start.Unix() + 3*60*60
	}
	if !end.IsZero() {
		w.to = end.Unix()
	}
	return t
}

// minuteOfDay returns t's wall-clock minutes after midnight in t's location.
func minuteOfDay(t time.Time) int {
	h, m, _ := t.Clock()
	return h*60 + m
}

// clip returns iv ∩ [from,to) and whether it is non-empty.
func clip(iv fablab.Interval, from, to time.Time) (fablab.Interval, bool) {
	if iv.Start.Before(from) {
		iv.Start = from
	}
	if iv.End.After(to) {
		iv.End = to
	}
	return iv, iv.Start.Before(iv.End)
}

// merge sorts ivs and joins those that overlap or touch; empty intervals are
// dropped. It reuses ivs' backing array.
func merge(ivs []fablab.Interval) []fablab.Interval {
	ivs = slices.DeleteFunc(ivs, func(iv fablab.Interval) bool { return !iv.Start.Before(iv.End) })
	slices.SortFunc(ivs, func(a, b fablab.Interval) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return a.End.Compare(b.End)
	})
	out := ivs[:0]
	for _, iv := range ivs {
		if n := len(out); n > 0 && !iv.Start.After(out[n-1].End) {
			if iv.End.After(out[n-1].End) {
				out[n-1].End = iv.End
			}
			continue
		}
		out = append(out, iv)
	}
	return out
}

// subtract returns a minus b; both must be sorted and merged (as merge returns).
func subtract(a, b []fablab.Interval) []fablab.Interval {
	// Each interval of b splits at most one interval of a in two.
	out := make([]fablab.Interval, 0, len(a)+len(b))
	j := 0
	for _, iv := range a {
		cur := iv.Start
		for j < len(b) && !b[j].End.After(cur) {
			j++
		}
		for k := j; k < len(b) && b[k].Start.Before(iv.End); k++ {
			if b[k].Start.After(cur) {
				out = append(out, fablab.Interval{Start: cur, End: b[k].Start})
			}
			if b[k].End.After(cur) {
				cur = b[k].End
			}
		}
		if cur.Before(iv.End) {
			out = append(out, fablab.Interval{Start: cur, End: iv.End})
		}
	}
	return out
}

// inLocation expresses every instant of ivs in loc, in place, so that callers
// (and JSON) see lab-local offsets whatever the inputs were.
func inLocation(ivs []fablab.Interval, loc *time.Location) []fablab.Interval {
	for i := range ivs {
		ivs[i].Start = ivs[i].Start.In(loc)
		ivs[i].End = ivs[i].End.In(loc)
	}
	return ivs
}
