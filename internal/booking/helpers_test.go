package booking

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

var paris = mustLoad("Europe/Paris")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// local returns wall time y-mo-d h:mi in Paris (time.Date's choice for DST
// edge wall times; tests use utc for those).
func local(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, paris)
}

func utc(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
}

func iv(a, b time.Time) fablab.Interval { return fablab.Interval{Start: a, End: b} }

func hm(h, m int) fablab.ClockTime { return fablab.ClockTime(h*60 + m) }

func rng(open, close fablab.ClockTime) []fablab.TimeRange {
	return []fablab.TimeRange{{Open: open, Close: close}}
}

// labSettings returns the default lab settings changed by edit and validated.
func labSettings(t testing.TB, edit func(s *fablab.Settings)) *fablab.Settings {
	t.Helper()
	s := fablab.DefaultSettings()
	if edit != nil {
		edit(&s)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("settings: %v", err)
	}
	return &s
}

func fmtIntervals(ivs []fablab.Interval) string {
	var b strings.Builder
	for _, iv := range ivs {
		fmt.Fprintf(&b, "\n  [%s, %s) %s", iv.Start.In(paris).Format("Mon 2006-01-02 15:04 MST"), iv.End.In(paris).Format("Mon 2006-01-02 15:04 MST"), iv.Duration())
	}
	if len(ivs) == 0 {
		return " (none)"
	}
	return b.String()
}

func sameIntervals(a, b []fablab.Interval) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Start.Equal(b[i].Start) || !a[i].End.Equal(b[i].End) {
			return false
		}
	}
	return true
}

func assertIntervals(t testing.TB, what string, got, want []fablab.Interval) {
	t.Helper()
	if !sameIntervals(got, want) {
		t.Errorf("%s:\ngot:%s\nwant:%s", what, fmtIntervals(got), fmtIntervals(want))
	}
}

func total(ivs []fablab.Interval) time.Duration {
	var d time.Duration
	for _, iv := range ivs {
		d += iv.Duration()
	}
	return d
}
