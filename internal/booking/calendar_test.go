package booking

import (
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// onlySunday returns settings open on Sundays only, over ranges rs.
func onlySunday(t testing.TB, rs ...fablab.TimeRange) *fablab.Settings {
	return labSettings(t, func(s *fablab.Settings) {
		s.OpeningHours = fablab.OpeningHours{Sunday: rs}
	})
}

// allDays sets every weekday to rs.
func allDays(s *fablab.Settings, rs []fablab.TimeRange) {
	o := &s.OpeningHours
	o.Monday, o.Tuesday, o.Wednesday, o.Thursday, o.Friday, o.Saturday, o.Sunday = rs, rs, rs, rs, rs, rs, rs
}

func TestOpenIntervalsDefaultWeek(t *testing.T) {
	s := labSettings(t, nil)
	got := OpenIntervals(s, local(2026, 6, 8, 0, 0), local(2026, 6, 15, 0, 0))
	want := []fablab.Interval{
		iv(local(2026, 6, 8, 9, 0), local(2026, 6, 8, 21, 0)),
		iv(local(2026, 6, 9, 9, 0), local(2026, 6, 9, 21, 0)),
		iv(local(2026, 6, 10, 9, 0), local(2026, 6, 10, 21, 0)),
		iv(local(2026, 6, 11, 9, 0), local(2026, 6, 11, 21, 0)),
		iv(local(2026, 6, 12, 9, 0), local(2026, 6, 12, 21, 0)),
		iv(local(2026, 6, 13, 10, 0), local(2026, 6, 13, 18, 0)),
	}
	assertIntervals(t, "default week", got, want)
	if len(got) != 6 || total(got) != 68*time.Hour {
		t.Errorf("got %d intervals totalling %s, want 6 totalling 68h", len(got), total(got))
	}
	for _, iv := range got {
		if iv.Start.Location().String() != "Europe/Paris" || iv.End.Location().String() != "Europe/Paris" {
			t.Errorf("interval %v is not in the lab location", iv)
		}
	}
}

func TestOpenIntervalsDSTDay(t *testing.T) {
	tests := []struct {
		name     string
		day      int // of the month
		month    time.Month
		open     fablab.TimeRange
		want     fablab.Interval
		duration time.Duration
	}{
		{
			name: "March whole day lasts 23h", month: time.March, day: 29,
			open: fablab.TimeRange{Open: 0, Close: 24 * 60},
			want: iv(utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 22, 0)), duration: 23 * time.Hour,
		},
		{
			name: "October whole day lasts 25h", month: time.October, day: 25,
			open: fablab.TimeRange{Open: 0, Close: 24 * 60},
			want: iv(utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 23, 0)), duration: 25 * time.Hour,
		},
		{
			name: "March 01:00-04:00 lasts 2h", month: time.March, day: 29,
			open: fablab.TimeRange{Open: hm(1, 0), Close: hm(4, 0)},
			want: iv(utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 2, 0)), duration: 2 * time.Hour,
		},
		{
			name: "October 01:00-04:00 lasts 4h", month: time.October, day: 25,
			open: fablab.TimeRange{Open: hm(1, 0), Close: hm(4, 0)},
			want: iv(utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 3, 0)), duration: 4 * time.Hour,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := onlySunday(t, tt.open)
			// A window of several days: only the Sunday is open.
			from, to := local(2026, tt.month, tt.day-2, 0, 0), local(2026, tt.month, tt.day+2, 0, 0)
			got := OpenIntervals(s, from, to)
			assertIntervals(t, "open", got, []fablab.Interval{tt.want})
			if len(got) == 1 && got[0].Duration() != tt.duration {
				t.Errorf("lasts %s, want %s", got[0].Duration(), tt.duration)
			}
		})
	}
}

func TestOpenIntervals(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(s *fablab.Settings)
		from, to time.Time
		want     []fablab.Interval
	}{
		{
			name: "window clips the first and last interval",
			from: local(2026, 6, 8, 12, 0), to: local(2026, 6, 9, 10, 0),
			want: []fablab.Interval{
				iv(local(2026, 6, 8, 12, 0), local(2026, 6, 8, 21, 0)),
				iv(local(2026, 6, 9, 9, 0), local(2026, 6, 9, 10, 0)),
			},
		},
		{
			name: "window given in UTC",
			from: utc(2026, 6, 8, 0, 0), to: utc(2026, 6, 8, 12, 0),
			want: []fablab.Interval{iv(local(2026, 6, 8, 9, 0), local(2026, 6, 8, 14, 0))},
		},
		{
			name: "sub-minute window edges are kept",
			from: local(2026, 6, 8, 9, 0).Add(30 * time.Second), to: local(2026, 6, 8, 9, 1).Add(time.Second),
			want: []fablab.Interval{iv(local(2026, 6, 8, 9, 0).Add(30*time.Second), local(2026, 6, 8, 9, 1).Add(time.Second))},
		},
		{
			name: "empty window",
			from: local(2026, 6, 8, 12, 0), to: local(2026, 6, 8, 12, 0),
			want: nil,
		},
		{
			name: "inverted window",
			from: local(2026, 6, 9, 12, 0), to: local(2026, 6, 8, 12, 0),
			want: nil,
		},
		{
			name: "window inside the night",
			from: local(2026, 6, 8, 21, 0), to: local(2026, 6, 9, 9, 0),
			want: nil,
		},
		{
			name: "closed weekday",
			from: local(2026, 6, 14, 0, 0), to: local(2026, 6, 15, 0, 0),
			want: nil,
		},
		{
			name: "closures remove whole days",
			edit: func(s *fablab.Settings) {
				s.Closures = []fablab.Closure{{From: fablab.Date{Year: 2026, Month: 6, Day: 9}, To: fablab.Date{Year: 2026, Month: 6, Day: 10}}}
			},
			from: local(2026, 6, 8, 0, 0), to: local(2026, 6, 12, 0, 0),
			want: []fablab.Interval{
				iv(local(2026, 6, 8, 9, 0), local(2026, 6, 8, 21, 0)),
				iv(local(2026, 6, 11, 9, 0), local(2026, 6, 11, 21, 0)),
			},
		},
		{
			name: "a day open until 24:00 merges with the next open from 00:00",
			edit: func(s *fablab.Settings) {
				s.OpeningHours.Friday = rng(hm(9, 0), 24*60)
				s.OpeningHours.Saturday = rng(0, hm(18, 0))
			},
			from: local(2026, 6, 12, 0, 0), to: local(2026, 6, 14, 0, 0),
			want: []fablab.Interval{iv(local(2026, 6, 12, 9, 0), local(2026, 6, 13, 18, 0))},
		},
		{
			name: "touching ranges of one day merge",
			edit: func(s *fablab.Settings) {
				s.OpeningHours.Monday = []fablab.TimeRange{{Open: hm(9, 0), Close: hm(12, 0)}, {Open: hm(12, 0), Close: hm(18, 0)}}
			},
			from: local(2026, 6, 8, 0, 0), to: local(2026, 6, 9, 0, 0),
			want: []fablab.Interval{iv(local(2026, 6, 8, 9, 0), local(2026, 6, 8, 18, 0))},
		},
		{
			name: "a lunch break splits a day",
			edit: func(s *fablab.Settings) {
				s.OpeningHours.Monday = []fablab.TimeRange{{Open: hm(9, 0), Close: hm(12, 0)}, {Open: hm(13, 30), Close: hm(18, 0)}}
			},
			from: local(2026, 6, 8, 0, 0), to: local(2026, 6, 9, 0, 0),
			want: []fablab.Interval{
				iv(local(2026, 6, 8, 9, 0), local(2026, 6, 8, 12, 0)),
				iv(local(2026, 6, 8, 13, 30), local(2026, 6, 8, 18, 0)),
			},
		},
		{
			name: "open around the clock is one interval",
			edit: func(s *fablab.Settings) { allDays(s, rng(0, 24*60)) },
			from: local(2026, 3, 23, 0, 0), to: local(2026, 3, 30, 0, 0),
			want: []fablab.Interval{iv(local(2026, 3, 23, 0, 0), local(2026, 3, 30, 0, 0))},
		},
		{
			name: "a closure splits round-the-clock opening",
			edit: func(s *fablab.Settings) {
				allDays(s, rng(0, 24*60))
				s.Closures = []fablab.Closure{{From: fablab.Date{Year: 2026, Month: 10, Day: 25}, To: fablab.Date{Year: 2026, Month: 10, Day: 25}}}
			},
			from: local(2026, 10, 24, 12, 0), to: local(2026, 10, 26, 12, 0),
			want: []fablab.Interval{
				iv(local(2026, 10, 24, 12, 0), local(2026, 10, 25, 0, 0)),
				iv(local(2026, 10, 26, 0, 0), local(2026, 10, 26, 12, 0)),
			},
		},
		{
			name: "a close in the skipped hour is the instant of the change",
			edit: func(s *fablab.Settings) { s.OpeningHours.Sunday = rng(hm(1, 0), hm(2, 30)) },
			from: local(2026, 3, 29, 0, 0), to: local(2026, 3, 30, 0, 0),
			want: []fablab.Interval{iv(utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 0))},
		},
		{
			name: "a range inside the skipped hour is empty",
			edit: func(s *fablab.Settings) { s.OpeningHours.Sunday = rng(hm(2, 0), hm(2, 45)) },
			from: local(2026, 3, 29, 0, 0), to: local(2026, 3, 30, 0, 0),
			want: nil,
		},
		{
			name: "an open in the skipped hour is the instant of the change",
			edit: func(s *fablab.Settings) { s.OpeningHours.Sunday = rng(hm(2, 15), hm(4, 0)) },
			from: local(2026, 3, 29, 0, 0), to: local(2026, 3, 30, 0, 0),
			want: []fablab.Interval{iv(utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0))},
		},
		{
			name: "a close in the repeated hour is its first occurrence",
			edit: func(s *fablab.Settings) { s.OpeningHours.Sunday = rng(0, hm(2, 30)) },
			from: local(2026, 10, 25, 0, 0), to: local(2026, 10, 26, 0, 0),
			want: []fablab.Interval{iv(utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 0, 30))},
		},
		{
			name: "an open in the repeated hour is its first occurrence",
			edit: func(s *fablab.Settings) { s.OpeningHours.Sunday = rng(hm(2, 30), hm(5, 0)) },
			from: local(2026, 10, 25, 0, 0), to: local(2026, 10, 26, 0, 0),
			want: []fablab.Interval{iv(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 4, 0))},
		},
		{
			name: "the repeated hour is open twice over",
			edit: func(s *fablab.Settings) { s.OpeningHours.Sunday = rng(hm(2, 0), hm(3, 0)) },
			from: local(2026, 10, 25, 0, 0), to: local(2026, 10, 26, 0, 0),
			want: []fablab.Interval{iv(utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0))},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := labSettings(t, tt.edit)
			got := OpenIntervals(s, tt.from, tt.to)
			if got == nil {
				t.Error("OpenIntervals returned nil, want a non-nil slice")
			}
			assertIntervals(t, "open", got, tt.want)
		})
	}
}

func TestWeekOf(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want fablab.Interval
		dur  time.Duration
	}{
		{"ordinary week", local(2026, 6, 10, 15, 0), iv(local(2026, 6, 8, 0, 0), local(2026, 6, 15, 0, 0)), 168 * time.Hour},
		{"Monday midnight starts its week", local(2026, 6, 15, 0, 0), iv(local(2026, 6, 15, 0, 0), local(2026, 6, 22, 0, 0)), 168 * time.Hour},
		{"Sunday night belongs to the week before", local(2026, 6, 14, 23, 59).Add(59 * time.Second), iv(local(2026, 6, 8, 0, 0), local(2026, 6, 15, 0, 0)), 168 * time.Hour},
		{"UTC input is read in lab time", utc(2026, 6, 14, 22, 30), iv(local(2026, 6, 15, 0, 0), local(2026, 6, 22, 0, 0)), 168 * time.Hour},
		{"week across new year", local(2026, 1, 1, 12, 0), iv(local(2025, 12, 29, 0, 0), local(2026, 1, 5, 0, 0)), 168 * time.Hour},
		{"March DST week lasts 167h", utc(2026, 3, 29, 1, 30), iv(local(2026, 3, 23, 0, 0), local(2026, 3, 30, 0, 0)), 167 * time.Hour},
		{"October DST week lasts 169h", utc(2026, 10, 25, 1, 30), iv(local(2026, 10, 19, 0, 0), local(2026, 10, 26, 0, 0)), 169 * time.Hour},
	}
	s := labSettings(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := WeekOf(s, tt.t)
			assertIntervals(t, "week", []fablab.Interval{got}, []fablab.Interval{tt.want})
			if got.Duration() != tt.dur {
				t.Errorf("week lasts %s, want %s", got.Duration(), tt.dur)
			}
			if got.Start.Weekday() != time.Monday || got.Start.Location().String() != "Europe/Paris" {
				t.Errorf("week starts %s, want a Monday in Europe/Paris", got.Start)
			}
		})
	}
}

// TestWallInstantBruteForce compares wallInstant with its definition — the
// first instant of the day whose wall clock reads c or later — found by walking
// minute by minute through every DST change of 2026 in zones whose changes
// happen at various times of day (02:00/03:00, midnight, half hours).
func TestWallInstantBruteForce(t *testing.T) {
	zones := []string{"Europe/Paris", "America/New_York", "America/Santiago", "America/Havana", "Australia/Lord_Howe", "Africa/Casablanca"}
	for _, name := range zones {
		t.Run(name, func(t *testing.T) {
			loc := mustLoad(name)
			days := map[fablab.Date]bool{}
			for at := utc(2026, 1, 1, 0, 0).In(loc); ; {
				_, end := at.ZoneBounds()
				if end.IsZero() || end.Year() > 2026 {
					break
				}
				for _, d := range []fablab.Date{fablab.DateOf(end.Add(-time.Minute).In(loc)), fablab.DateOf(end.In(loc))} {
					days[d.AddDays(-1)], days[d], days[d.AddDays(1)] = true, true, true
				}
				at = end.In(loc)
			}
			if len(days) == 0 || name == "Europe/Paris" && len(days) != 6 {
				t.Fatalf("found %d days around DST changes in 2026 (Paris has 6)", len(days))
			}
			for d := range days {
				want := bruteWallInstants(d, loc)
				for c := 0; c <= 24*60; c++ {
					if got := wallInstant(d, fablab.ClockTime(c), loc); !got.Equal(want[c]) {
						t.Errorf("%s %s: got %s, want %s", d, fablab.ClockTime(c), got, want[c].In(loc))
					}
				}
			}
		})
	}
}

// bruteWallInstants returns, for each c in 0..1440, the first instant of d
// (minute by minute) whose wall clock in loc reads c or later, and for 1440
// the first instant of a later day.
func bruteWallInstants(d fablab.Date, loc *time.Location) []time.Time {
	out := make([]time.Time, 0, 24*60+1)
	for m := time.Date(d.Year, d.Month, d.Day-2, 0, 0, 0, 0, time.UTC); len(out) <= 24*60; m = m.Add(time.Minute) {
		lt := m.In(loc)
		switch ld := fablab.DateOf(lt); {
		case ld == d:
			for w := lt.Hour()*60 + lt.Minute(); len(out) <= w; {
				out = append(out, m)
			}
		case d.Before(ld):
			for len(out) <= 24*60 {
				out = append(out, m)
			}
		}
	}
	return out
}

// TestWallClockMatchesWallInstant checks the arithmetic shortcut of
// OpenIntervals against wallInstant for every quarter hour (and 24:00) of
// every day of 2026 and 2027, in zones with one-hour, half-hour and no DST
// changes and a UTC offset that is not whole hours, walking days forward as
// calendars do and then jumping around.
func TestWallClockMatchesWallInstant(t *testing.T) {
	for _, name := range []string{"Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC", "America/Santiago"} {
		loc := mustLoad(name)
		wc := wallClock{loc: loc}
		check := func(d fablab.Date, c fablab.ClockTime) {
			t.Helper()
			want := wallInstant(d, c, loc)
			if got := wc.at(d, c); !got.Equal(want) || got.Location() != loc {
				t.Fatalf("%s %s %s: got %s, want %s", name, d, c, got, want)
			}
		}
		first := fablab.Date{Year: 2026, Month: 1, Day: 1}
		for d := first; d.Year < 2028; d = d.AddDays(1) {
			for c := fablab.ClockTime(0); c <= 24*60; c += 15 {
				check(d, c)
			}
			// The zone period of the next day known first: on a day of
			// change, the period after it must not answer for before it.
			for c := fablab.ClockTime(0); c <= 24*60; c += 15 {
				wc.at(d.AddDays(1), 12*60)
				check(d, c)
			}
		}
		for i := 0; i < 5000; i++ {
			check(first.AddDays(i*7919%730), fablab.ClockTime(i*37%(24*60+1)))
		}
	}
}
