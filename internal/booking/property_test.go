package booking

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fabgate/fabgate/internal/fablab"
)

// The reference model: walk a window minute by minute in real time, read each
// minute's date and wall clock in Paris, and mark it open, busy, in
// maintenance, on a closure day. The only DST rule it knows is the one the
// package documents: the lab's clock never goes back within a day (during the
// repeated autumn hour it keeps the latest wall time it showed), so a minute is
// open when the highest wall time shown so far that day lies in a range.

type minute struct {
	at        time.Time
	wall      int // wall-clock minute of day in Paris
	closedDay bool
	open      bool // within opening hours and not on a closure day
	busy      bool // occupied or maintenance
	maint     bool
}

type scenario struct {
	s        *fablab.Settings
	from, to time.Time
	m        *fablab.Machine
	occupied []fablab.Interval
	minutes  []minute // the model, one per minute of [from,to)
}

var windowDays = []fablab.Date{
	{Year: 2026, Month: time.March, Day: 27},   // Friday before the spring change
	{Year: 2026, Month: time.March, Day: 28},   // the Saturday just before it
	{Year: 2026, Month: time.October, Day: 23}, // Friday before the autumn change
	{Year: 2026, Month: time.October, Day: 24}, // the Saturday just before it
	{Year: 2026, Month: time.June, Day: 10},    // an ordinary week
	{Year: 2026, Month: time.December, Day: 30},
}

func setDay(o *fablab.OpeningHours, w time.Weekday, rs []fablab.TimeRange) {
	switch w {
	case time.Monday:
		o.Monday = rs
	case time.Tuesday:
		o.Tuesday = rs
	case time.Wednesday:
		o.Wednesday = rs
	case time.Thursday:
		o.Thursday = rs
	case time.Friday:
		o.Friday = rs
	case time.Saturday:
		o.Saturday = rs
	default:
		o.Sunday = rs
	}
}

// drawDayRanges draws a day's opening ranges on the 15-minute grid.
func drawDayRanges(t *rapid.T, label string) []fablab.TimeRange {
	rs := []fablab.TimeRange{}
	// rapid favours small numbers: the most useful kind comes first.
	switch rapid.IntRange(0, 4).Draw(t, label+"_kind") {
	case 0, 1: // up to three ranges, possibly touching
		cur := 0
		for i := range rapid.IntRange(1, 3).Draw(t, label+"_n") {
			open := cur + 15*rapid.IntRange(0, 40).Draw(t, fmt.Sprintf("%s_gap%d", label, i))
			close := min(open+15*rapid.IntRange(1, 56).Draw(t, fmt.Sprintf("%s_len%d", label, i)), 24*60)
			if open >= 24*60 {
				break
			}
			rs = append(rs, fablab.TimeRange{Open: fablab.ClockTime(open), Close: fablab.ClockTime(close)})
			cur = close
		}
	case 2: // one range with ends at or around the DST changes (01:00–04:00)
		open := rapid.SampledFrom([]int{0, 60, 105, 120, 135, 150, 165, 180}).Draw(t, label+"_open")
		close := rapid.SampledFrom([]int{120, 135, 150, 165, 180, 195, 240, 1440}).Draw(t, label+"_close")
		if close > open {
			rs = append(rs, fablab.TimeRange{Open: fablab.ClockTime(open), Close: fablab.ClockTime(close)})
		}
	case 3: // round the clock
		rs = append(rs, fablab.TimeRange{Open: 0, Close: 24 * 60})
	default: // closed
	}
	return rs
}

// drawSettings draws opening hours and closures around day base.
func drawSettings(t *rapid.T, base fablab.Date) *fablab.Settings {
	s := fablab.DefaultSettings()
	for w := time.Sunday; w <= time.Saturday; w++ {
		setDay(&s.OpeningHours, w, drawDayRanges(t, w.String()))
	}
	s.Closures = []fablab.Closure{}
	for i := range rapid.IntRange(0, 2).Draw(t, "closures") {
		from := base.AddDays(rapid.IntRange(-1, 5).Draw(t, fmt.Sprintf("closure%d_from", i)))
		s.Closures = append(s.Closures, fablab.Closure{From: from, To: from.AddDays(rapid.IntRange(0, 2).Draw(t, fmt.Sprintf("closure%d_days", i)))})
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("drawn settings are invalid: %v", err)
	}
	return &s
}

// drawIntervals draws n intervals around [from, from+length); some are empty
// or inverted, which must be ignored.
func drawIntervals(t *rapid.T, label string, from time.Time, length, maxN int) []fablab.Interval {
	var out []fablab.Interval
	for i := range rapid.IntRange(0, maxN).Draw(t, label) {
		start := from.Add(time.Duration(rapid.IntRange(-300, length+300).Draw(t, fmt.Sprintf("%s%d_start", label, i))) * time.Minute)
		d := time.Duration(rapid.IntRange(-60, 600).Draw(t, fmt.Sprintf("%s%d_minutes", label, i))) * time.Minute
		out = append(out, fablab.Interval{Start: start, End: start.Add(d)})
	}
	return out
}

func drawScenario(t *rapid.T, minLength int) *scenario {
	base := rapid.SampledFrom(windowDays).Draw(t, "base")
	sc := &scenario{s: drawSettings(t, base)}
	from := base.In(paris).Add(time.Duration(rapid.IntRange(0, 2*24*60).Draw(t, "from_minute")) * time.Minute)
	// A few days, or now and then a short window.
	length := 24*60*rapid.IntRange(1, 3).Draw(t, "length_days") + rapid.IntRange(0, 24*60-1).Draw(t, "length_minutes")
	if rapid.IntRange(0, 4).Draw(t, "short") == 4 {
		length = rapid.IntRange(minLength, 600).Draw(t, "short_minutes")
	}
	sc.from, sc.to = from, from.Add(time.Duration(length)*time.Minute)
	sc.occupied = drawIntervals(t, "occupied", from, length, 8)
	sc.m = machine(func(m *fablab.Machine) {
		for _, iv := range drawIntervals(t, "maintenance", from, length, 3) {
			m.Maintenance = append(m.Maintenance, fablab.MaintenanceBlock{Start: iv.Start, End: iv.End})
		}
	})
	sc.model()
	return sc
}

// model fills sc.minutes.
func (sc *scenario) model() {
	contains := func(ivs []fablab.Interval, at time.Time) bool {
		for _, iv := range ivs {
			if !at.Before(iv.Start) && at.Before(iv.End) {
				return true
			}
		}
		return false
	}
	var maint []fablab.Interval
	for _, b := range sc.m.Maintenance {
		maint = append(maint, fablab.Interval{Start: b.Start, End: b.End})
	}
	var day fablab.Date
	highest := -1
	// Start a day and a half early so that the first day's highest wall time is known.
	for at := sc.from.Add(-36 * time.Hour); at.Before(sc.to); at = at.Add(time.Minute) {
		lt := at.In(paris)
		if d := fablab.DateOf(lt); d != day {
			day, highest = d, -1
		}
		wall := lt.Hour()*60 + lt.Minute()
		highest = max(highest, wall)
		if at.Before(sc.from) {
			continue
		}
		mn := minute{at: at, wall: wall, closedDay: sc.s.ClosedOn(day)}
		if !mn.closedDay {
			for _, r := range sc.s.OpeningHours.Day(day.Weekday()) {
				if int(r.Open) <= highest && highest < int(r.Close) {
					mn.open = true
				}
			}
		}
		mn.maint = contains(maint, at)
		mn.busy = mn.maint || contains(sc.occupied, at)
		sc.minutes = append(sc.minutes, mn)
	}
}

// minuteSet checks that ivs are sorted, non-empty, separated (merged),
// minute-aligned and inside the window, and returns the minutes they cover.
func (sc *scenario) minuteSet(t *rapid.T, what string, ivs []fablab.Interval) []bool {
	set := make([]bool, len(sc.minutes))
	for i, iv := range ivs {
		if !iv.Start.Before(iv.End) {
			t.Fatalf("%s[%d] %v is empty", what, i, iv)
		}
		if iv.Start.Before(sc.from) || iv.End.After(sc.to) {
			t.Fatalf("%s[%d] %v is outside the window [%s, %s)", what, i, iv, sc.from, sc.to)
		}
		if i > 0 && !ivs[i-1].End.Before(iv.Start) {
			t.Fatalf("%s[%d] %v overlaps or touches the one before (%v)", what, i, iv, ivs[i-1])
		}
		a, b := iv.Start.Sub(sc.from), iv.End.Sub(sc.from)
		if a%time.Minute != 0 || b%time.Minute != 0 {
			t.Fatalf("%s[%d] %v is not on whole minutes", what, i, iv)
		}
		for k := int(a / time.Minute); k < int(b/time.Minute); k++ {
			set[k] = true
		}
	}
	return set
}

func (sc *scenario) compare(t *rapid.T, what string, got []bool, want func(minute) bool) {
	for i, mn := range sc.minutes {
		if got[i] != want(mn) {
			t.Fatalf("%s: minute %s (wall %s) is %v, model says %v", what, mn.at.In(paris).Format("Mon 2006-01-02 15:04 MST"), fablab.ClockTime(mn.wall), got[i], want(mn))
		}
	}
}

func TestAvailabilityAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := drawScenario(t, 0)
		sc.m.State = rapid.SampledFrom([]string{fablab.MachineAvailable, fablab.MachineAvailable, fablab.MachineAvailable, fablab.MachineMaintenance}).Draw(t, "state")

		open := OpenIntervals(sc.s, sc.from, sc.to)
		sc.compare(t, "open", sc.minuteSet(t, "open", open), func(m minute) bool { return m.open })

		free, busy := Availability(sc.s, sc.m, sc.occupied, sc.from, sc.to)
		if free == nil || busy == nil {
			t.Fatalf("Availability returned a nil slice")
		}
		available := sc.m.State == fablab.MachineAvailable
		sc.compare(t, "free", sc.minuteSet(t, "free", free), func(m minute) bool { return available && m.open && !m.busy })
		sc.compare(t, "busy", sc.minuteSet(t, "busy", busy), func(m minute) bool { return m.busy })
	})
}

// TestCheckAgainstModel draws requests that satisfy every rule but those that
// depend on the calendar and on maintenance, so the model alone decides the
// outcome: a request built inside open, maintenance-free time is accepted,
// and one that leaves the opening hours or overlaps maintenance never is.
func TestCheckAgainstModel(t *testing.T) {
	var runs, built, rejected int
	rapid.Check(t, func(t *rapid.T) {
		runs++
		sc := drawScenario(t, 60)
		r := &sc.m.Rules
		r.SlotMinutes = rapid.SampledFrom([]int{5, 15, 30, 60, 120}).Draw(t, "slot")
		r.MinMinutes = r.SlotMinutes * rapid.IntRange(1, 3).Draw(t, "min_slots")
		r.MaxMinutes = r.MinMinutes + r.SlotMinutes*rapid.IntRange(0, 6).Draw(t, "extra_slots")
		r.MaxAheadDays = rapid.IntRange(1, 5).Draw(t, "ahead_days")
		r.WeeklyQuotaMinutes = 0
		r.RequireTraining = rapid.Bool().Draw(t, "require_training")
		sc.m.RequiredTrainings = []fablab.ID{laserSafety}
		if err := r.Validate(); err != nil {
			t.Fatalf("drawn rules are invalid: %v", err)
		}
		req := baseRequest()
		req.Machine = sc.m
		req.Qualifications[1].ExpiresAt = nil
		req.Member.MembershipUntil = nil

		now := sc.from.Add(-time.Duration(rapid.IntRange(0, 2*24*60).Draw(t, "now_minutes_before"))*time.Minute +
			time.Duration(rapid.IntRange(0, 59).Draw(t, "now_second"))*time.Second)
		earliest := now.Truncate(time.Minute)
		latest := now.In(paris).AddDate(0, 0, r.MaxAheadDays)
		n := len(sc.minutes)

		// good[i] counts the minutes from i on that are open and free of maintenance.
		good := make([]int, n+1)
		for i := n - 1; i >= 0; i-- {
			if sc.minutes[i].open && !sc.minutes[i].maint {
				good[i] = good[i+1] + 1
			}
		}

		var i, length int
		if rapid.Bool().Draw(t, "build_valid") {
			type cand struct{ i, maxLen int }
			var cands []cand
			for k, mn := range sc.minutes {
				if mn.wall%r.SlotMinutes == 0 && !mn.at.Before(earliest) && !mn.at.After(latest) && good[k] >= r.MinMinutes {
					cands = append(cands, cand{k, min(good[k], r.MaxMinutes) / r.SlotMinutes * r.SlotMinutes})
				}
			}
			if len(cands) == 0 {
				return // nothing bookable in this window
			}
			c := cands[rapid.IntRange(0, len(cands)-1).Draw(t, "candidate")]
			i = c.i
			length = rapid.IntRange(r.MinMinutes/r.SlotMinutes, c.maxLen/r.SlotMinutes).Draw(t, "slots") * r.SlotMinutes
			built++
		} else {
			i = rapid.IntRange(0, n-1).Draw(t, "start_minute")
			length = rapid.IntRange(r.MinMinutes/r.SlotMinutes, r.MaxMinutes/r.SlotMinutes).Draw(t, "slots") * r.SlotMinutes
			if rapid.Bool().Draw(t, "align_start") {
				i -= min(sc.minutes[i].wall%r.SlotMinutes, i)
			}
			length = min(length, n-i)
		}
		req.Start, req.End = sc.minutes[i].at, sc.minutes[i].at.Add(time.Duration(length)*time.Minute)

		// What the model expects, in Check's order.
		span := sc.minutes[i : i+length]
		want := ""
		anyOf := func(f func(minute) bool) bool {
			for _, mn := range span {
				if f(mn) {
					return true
				}
			}
			return false
		}
		outside := anyOf(func(m minute) bool { return !m.open })
		maint := anyOf(func(m minute) bool { return m.maint })
		switch {
		case req.Start.Before(earliest):
			want = fablab.CodeInThePast
		case sc.minutes[i].wall%r.SlotMinutes != 0 || length%r.SlotMinutes != 0:
			want = fablab.CodeSlotGranularity
		case length < r.MinMinutes:
			want = fablab.CodeTooShort
		case req.Start.After(latest):
			want = fablab.CodeTooFarAhead
		case anyOf(func(m minute) bool { return m.closedDay }):
			want = fablab.CodeLabClosed
		case outside:
			want = fablab.CodeOutsideOpeningHours
		case maint:
			want = fablab.CodeMaintenance
		}

		err := Check(sc.s, req, now, 0)
		if (outside || maint) && err == nil {
			t.Fatalf("Check accepted %s – %s, which is outside opening hours (%v) or overlaps maintenance (%v)",
				req.Start.In(paris), req.End.In(paris), outside, maint)
		}
		if got := fablab.ErrorCode(err); got != want {
			t.Fatalf("Check(%s – %s, now %s) = %q (%v), model says %q",
				req.Start.In(paris), req.End.In(paris), now.In(paris), got, err, want)
		}
		if err != nil {
			rejected++
		}
	})
	t.Logf("%d runs: %d valid requests built, %d requests rejected", runs, built, rejected)
	// Guard against a generator that silently stopped producing useful cases
	// (about a quarter of the runs build a valid request, half are rejected).
	if !t.Failed() && runs >= 100 && (built < runs/20 || rejected < runs/20) {
		t.Errorf("only %d valid requests built and %d rejected in %d runs: the generators need adjusting", built, rejected, runs)
	}
}
