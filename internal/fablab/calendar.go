package fablab

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ClockTime is a wall-clock time of day in minutes after midnight, 0..1440.
// 1440 ("24:00") is allowed as the close of a day's last range.
type ClockTime int

// ParseClockTime parses "HH:MM".
func ParseClockTime(s string) (ClockTime, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 || !isDigits(h) || !isDigits(m) { // Atoi alone accepts "+9" and "-0"
		return 0, Errorf(EINVALID, "time of day %q must be HH:MM", truncate(s, 20))
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, Errorf(EINVALID, "time of day %q must be between 00:00 and 24:00", truncate(s, 20))
	}
	return ClockTime(hh*60 + mm), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String writes "HH:MM".
func (c ClockTime) String() string { return fmt.Sprintf("%02d:%02d", int(c)/60, int(c)%60) }

// MarshalText writes "HH:MM".
func (c ClockTime) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads "HH:MM".
func (c *ClockTime) UnmarshalText(b []byte) error {
	v, err := ParseClockTime(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Date is a calendar date in the lab's time zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate parses "YYYY-MM-DD".
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, Errorf(EINVALID, "date %q must be YYYY-MM-DD", truncate(s, 20))
	}
	return DateOf(t), nil
}

// DateOf returns the calendar date of t in t's location.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{y, m, d}
}

// In returns local midnight (or the first instant of the day when midnight is
// skipped by a DST change) of d in loc.
func (d Date) In(loc *time.Location) time.Time {
	t := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
	if h, m, _ := t.Clock(); DateOf(t) == d && h == 0 && m == 0 {
		return t
	}
	// Midnight was skipped. time.Date moved it past the change (east of UTC)
	// or back into the previous day (west of UTC, e.g. America/Santiago); the
	// change itself is the first instant of d.
	start, end := t.ZoneBounds()
	if DateOf(t).Before(d) {
		start = end
	}
	if start.IsZero() {
		return t
	}
	return start
}

// At returns the instant of wall-clock time c on day d in loc. 24:00 is the
// next day's midnight. time.Date normalises wall times skipped by DST.
func (d Date) At(c ClockTime, loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, int(c)/60, int(c)%60, 0, 0, loc)
}

// AddDays returns the date n days later.
func (d Date) AddDays(n int) Date {
	return DateOf(time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC))
}

// Before reports whether d is strictly before e.
func (d Date) Before(e Date) bool {
	if d.Year != e.Year {
		return d.Year < e.Year
	}
	if d.Month != e.Month {
		return d.Month < e.Month
	}
	return d.Day < e.Day
}

// Weekday returns the day of week of d.
func (d Date) Weekday() time.Weekday {
	return time.Date(d.Year, d.Month, d.Day, 12, 0, 0, 0, time.UTC).Weekday()
}

// String writes "YYYY-MM-DD".
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day) }

// MarshalText writes "YYYY-MM-DD".
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads "YYYY-MM-DD".
func (d *Date) UnmarshalText(b []byte) error {
	v, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Interval is a half-open span of time [Start, End).
type Interval struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Overlaps reports whether the two half-open intervals share an instant.
// An empty interval holds no instant and overlaps nothing.
func (i Interval) Overlaps(j Interval) bool {
	return i.Start.Before(i.End) && j.Start.Before(j.End) && i.Start.Before(j.End) && j.Start.Before(i.End)
}

// Duration returns End-Start.
func (i Interval) Duration() time.Duration { return i.End.Sub(i.Start) }
