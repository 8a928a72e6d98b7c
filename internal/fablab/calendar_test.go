package fablab

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseClockTime(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ClockTime
		wantErr bool
	}{
		{"midnight", "00:00", 0, false},
		{"nine", "09:00", 9 * 60, false},
		{"last minute", "23:59", 23*60 + 59, false},
		{"end of day", "24:00", 1440, false},
		{"past end of day", "24:01", 0, true},
		{"hour 25", "25:00", 0, true},
		{"one hour digit", "9:00", 0, true},
		{"one minute digit", "09:0", 0, true},
		{"minute 60", "09:60", 0, true},
		{"negative hour", "-1:00", 0, true},
		{"negative zero hour", "-0:00", 0, true},
		{"plus sign hour", "+9:00", 0, true},
		{"plus sign minute", "09:+5", 0, true},
		{"negative zero minute", "09:-0", 0, true},
		{"empty", "", 0, true},
		{"no colon", "0900", 0, true},
		{"seconds", "09:00:00", 0, true},
		{"dot separator", "09.00", 0, true},
		{"spaces", " 9:00", 0, true},
		{"letters", "ab:cd", 0, true},
		{"am/pm", "9:00am", 0, true},
		{"unicode digits", "٠٩:٠٠", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseClockTime(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseClockTime(%q) = %v, want error", tt.in, got)
				}
				if ErrorCode(err) != EINVALID {
					t.Errorf("code = %q, want %q", ErrorCode(err), EINVALID)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseClockTime(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("String() = %q, want %q", s, tt.in)
			}
		})
	}
}

func TestClockTimeJSON(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    ClockTime
		wantErr bool
	}{
		{"midnight", `"00:00"`, 0, false},
		{"end of day", `"24:00"`, 1440, false},
		{"afternoon", `"13:45"`, 13*60 + 45, false},
		{"past end of day", `"24:01"`, 0, true},
		{"short hour", `"9:00"`, 0, true},
		{"minute 60", `"09:60"`, 0, true},
		{"negative", `"-1:00"`, 0, true},
		{"number", `540`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c ClockTime
			err := json.Unmarshal([]byte(tt.json), &c)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Unmarshal(%s) = %v, want error", tt.json, c)
				}
				return
			}
			if err != nil || c != tt.want {
				t.Fatalf("Unmarshal(%s) = %d, %v, want %d", tt.json, c, err, tt.want)
			}
			b, err := json.Marshal(c)
			if err != nil || string(b) != tt.json {
				t.Errorf("Marshal(%d) = %s, %v, want %s", c, b, err, tt.json)
			}
		})
	}
}

func TestTimeRangeJSON(t *testing.T) {
	r := TimeRange{Open: 9 * 60, Close: 1440}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"open":"09:00","close":"24:00"}`; string(b) != want {
		t.Fatalf("Marshal = %s, want %s", b, want)
	}
	var back TimeRange
	if err := json.Unmarshal(b, &back); err != nil || back != r {
		t.Fatalf("round trip = %+v, %v, want %+v", back, err, r)
	}
}

func FuzzParseClockTime(f *testing.F) {
	for _, s := range []string{"00:00", "09:30", "24:00", "24:01", "9:00", "09:60", "-1:00", "+9:00", "-0:00", "09:+5", "", ":", "12:34:56"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseClockTime(s)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("ParseClockTime(%q) error code %q, want %q", s, ErrorCode(err), EINVALID)
			}
			return
		}
		if c < 0 || c > 1440 {
			t.Fatalf("ParseClockTime(%q) = %d, out of 0..1440", s, c)
		}
		if c.String() != s {
			t.Fatalf("ParseClockTime(%q) = %d whose String is %q", s, c, c.String())
		}
	})
}

func TestParseDate(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Date
		wantErr bool
	}{
		{"ordinary", "2026-03-14", Date{2026, time.March, 14}, false},
		{"leap day", "2024-02-29", Date{2024, time.February, 29}, false},
		{"new year's eve", "2025-12-31", Date{2025, time.December, 31}, false},
		{"not a leap year", "2025-02-29", Date{}, true},
		{"century not leap", "1900-02-29", Date{}, true},
		{"day 31 of april", "2026-04-31", Date{}, true},
		{"month 13", "2026-13-01", Date{}, true},
		{"month 0", "2026-00-10", Date{}, true},
		{"day 0", "2026-01-00", Date{}, true},
		{"single digit month", "2026-3-14", Date{}, true},
		{"single digit day", "2026-03-4", Date{}, true},
		{"slashes", "2026/03/14", Date{}, true},
		{"with time", "2026-03-14T10:00:00Z", Date{}, true},
		{"empty", "", Date{}, true},
		{"day first", "14-03-2026", Date{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDate(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseDate(%q) = %v, want error", tt.in, got)
				}
				if ErrorCode(err) != EINVALID {
					t.Errorf("code = %q, want %q", ErrorCode(err), EINVALID)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseDate(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestDateJSON(t *testing.T) {
	d := Date{2026, time.January, 5}
	b, err := json.Marshal(d)
	if err != nil || string(b) != `"2026-01-05"` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var back Date
	if err := json.Unmarshal(b, &back); err != nil || back != d {
		t.Fatalf("round trip = %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`"2026-02-30"`), &back); err == nil {
		t.Fatalf("Unmarshal(2026-02-30) = %v, want error", back)
	}
}

func TestDateAddDays(t *testing.T) {
	tests := []struct {
		name string
		d    Date
		n    int
		want Date
	}{
		{"zero", Date{2026, time.May, 10}, 0, Date{2026, time.May, 10}},
		{"next day", Date{2026, time.May, 10}, 1, Date{2026, time.May, 11}},
		{"across month end", Date{2026, time.January, 31}, 1, Date{2026, time.February, 1}},
		{"across year end", Date{2025, time.December, 31}, 1, Date{2026, time.January, 1}},
		{"backwards across year", Date{2026, time.January, 1}, -1, Date{2025, time.December, 31}},
		{"onto leap day", Date{2024, time.February, 28}, 1, Date{2024, time.February, 29}},
		{"off leap day", Date{2024, time.February, 29}, 1, Date{2024, time.March, 1}},
		{"no leap day in 2025", Date{2025, time.February, 28}, 1, Date{2025, time.March, 1}},
		{"back over leap day", Date{2024, time.March, 1}, -1, Date{2024, time.February, 29}},
		{"a leap year", Date{2024, time.January, 1}, 366, Date{2025, time.January, 1}},
		{"a week over DST in Paris", Date{2026, time.March, 25}, 7, Date{2026, time.April, 1}},
		{"many days back", Date{2026, time.March, 1}, -365, Date{2025, time.March, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.AddDays(tt.n); got != tt.want {
				t.Errorf("%v.AddDays(%d) = %v, want %v", tt.d, tt.n, got, tt.want)
			}
		})
	}
}

func TestDateBefore(t *testing.T) {
	tests := []struct {
		name string
		d, e Date
		want bool
	}{
		{"same day", Date{2026, 5, 10}, Date{2026, 5, 10}, false},
		{"day before", Date{2026, 5, 9}, Date{2026, 5, 10}, true},
		{"day after", Date{2026, 5, 11}, Date{2026, 5, 10}, false},
		{"earlier month later day", Date{2026, 4, 30}, Date{2026, 5, 1}, true},
		{"later month earlier day", Date{2026, 6, 1}, Date{2026, 5, 31}, false},
		{"earlier year later month", Date{2025, 12, 31}, Date{2026, 1, 1}, true},
		{"later year earlier month", Date{2027, 1, 1}, Date{2026, 12, 31}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.Before(tt.e); got != tt.want {
				t.Errorf("%v.Before(%v) = %v, want %v", tt.d, tt.e, got, tt.want)
			}
		})
	}
}

func TestDateWeekday(t *testing.T) {
	tests := []struct {
		name string
		d    Date
		want time.Weekday
	}{
		{"unix epoch", Date{1970, 1, 1}, time.Thursday},
		{"leap day 2024", Date{2024, 2, 29}, time.Thursday},
		{"Paris spring DST 2026", Date{2026, 3, 29}, time.Sunday},
		{"Paris autumn DST 2026", Date{2026, 10, 25}, time.Sunday},
		{"new year 2026", Date{2026, 1, 1}, time.Thursday},
		{"a Monday", Date{2026, 6, 1}, time.Monday},
		{"a Saturday", Date{2026, 6, 6}, time.Saturday},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.d.Weekday(); got != tt.want {
				t.Errorf("%v.Weekday() = %v, want %v", tt.d, got, tt.want)
			}
		})
	}
}

func TestDateOf(t *testing.T) {
	paris := mustLocation(t, "Europe/Paris")
	// 23:30 UTC on 31 December is already the new year in Paris.
	utc := time.Date(2025, 12, 31, 23, 30, 0, 0, time.UTC)
	if got, want := DateOf(utc), (Date{2025, 12, 31}); got != want {
		t.Errorf("DateOf(UTC) = %v, want %v", got, want)
	}
	if got, want := DateOf(utc.In(paris)), (Date{2026, 1, 1}); got != want {
		t.Errorf("DateOf(Paris) = %v, want %v", got, want)
	}
}

func TestDateInAndAtParis(t *testing.T) {
	paris := mustLocation(t, "Europe/Paris")
	spring := Date{2026, time.March, 29}   // 02:00 CET → 03:00 CEST
	autumn := Date{2026, time.October, 25} // 03:00 CEST → 02:00 CET
	tests := []struct {
		name string
		got  time.Time
		want time.Time // as a UTC instant
	}{
		{"In on an ordinary winter day", Date{2026, 1, 15}.In(paris), time.Date(2026, 1, 14, 23, 0, 0, 0, time.UTC)},
		{"In on an ordinary summer day", Date{2026, 7, 15}.In(paris), time.Date(2026, 7, 14, 22, 0, 0, 0, time.UTC)},
		{"In on the spring DST day", spring.In(paris), time.Date(2026, 3, 28, 23, 0, 0, 0, time.UTC)},
		{"In on the autumn DST day", autumn.In(paris), time.Date(2026, 10, 24, 22, 0, 0, 0, time.UTC)},
		{"At before the spring change", spring.At(90, paris), time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)},
		{"At 03:00 on the spring day", spring.At(3*60, paris), time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
		{"At a skipped time is normalised by time.Date", spring.At(2*60+30, paris), time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)},
		{"At 09:00 after the spring change", spring.At(9*60, paris), time.Date(2026, 3, 29, 7, 0, 0, 0, time.UTC)},
		{"At 24:00 on the spring day is the next midnight", spring.At(1440, paris), time.Date(2026, 3, 29, 22, 0, 0, 0, time.UTC)},
		{"At 09:00 after the autumn change", autumn.At(9*60, paris), time.Date(2026, 10, 25, 8, 0, 0, 0, time.UTC)},
		{"At 24:00 on the autumn day is the next midnight", autumn.At(1440, paris), time.Date(2026, 10, 25, 23, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.got.Equal(tt.want) {
				t.Errorf("got %v (%v), want %v", tt.got, tt.got.UTC(), tt.want)
			}
			if tt.got.Location() != paris {
				t.Errorf("location = %v, want Europe/Paris", tt.got.Location())
			}
		})
	}
	if h := spring.At(1440, paris).Sub(spring.In(paris)); h != 23*time.Hour {
		t.Errorf("spring DST day lasts %v, want 23h", h)
	}
	if h := autumn.At(1440, paris).Sub(autumn.In(paris)); h != 25*time.Hour {
		t.Errorf("autumn DST day lasts %v, want 25h", h)
	}
	// A repeated wall time: time.Date picks one of the two occurrences; both
	// read 02:30 on the right day.
	if got := autumn.At(2*60+30, paris); DateOf(got) != autumn || got.Hour() != 2 || got.Minute() != 30 {
		t.Errorf("At(02:30) on the autumn day = %v", got)
	}
}

// In zones whose DST change skips midnight, In returns the change itself: the
// first instant of the day, whichever side of UTC the zone is.
func TestDateInSkippedMidnight(t *testing.T) {
	tests := []struct {
		name string
		zone string
		d    Date
		want time.Time // the change, as a UTC instant
	}{
		{"Havana (west of UTC)", "America/Havana", Date{2024, 3, 10}, time.Date(2024, 3, 10, 5, 0, 0, 0, time.UTC)},
		{"Santiago (west of UTC)", "America/Santiago", Date{2024, 9, 8}, time.Date(2024, 9, 8, 4, 0, 0, 0, time.UTC)},
		{"Asuncion (west of UTC)", "America/Asuncion", Date{2023, 10, 1}, time.Date(2023, 10, 1, 4, 0, 0, 0, time.UTC)},
		{"Beirut (east of UTC)", "Asia/Beirut", Date{2024, 3, 31}, time.Date(2024, 3, 30, 22, 0, 0, 0, time.UTC)},
		{"Cairo (east of UTC)", "Africa/Cairo", Date{2024, 4, 26}, time.Date(2024, 4, 25, 22, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := mustLocation(t, tt.zone)
			got := tt.d.In(loc)
			if !got.Equal(tt.want) {
				t.Errorf("In = %v (%v), want %v", got, got.UTC(), tt.want)
			}
			if DateOf(got) != tt.d {
				t.Errorf("DateOf(In) = %v, want %v", DateOf(got), tt.d)
			}
			if got.Location() != loc {
				t.Errorf("location = %v, want %v", got.Location(), loc)
			}
			if prev := got.Add(-time.Nanosecond); DateOf(prev) != tt.d.AddDays(-1) {
				t.Errorf("the instant before In is on %v, want the previous day", DateOf(prev))
			}
		})
	}
}

func TestIntervalOverlaps(t *testing.T) {
	at := func(h int) time.Time { return time.Date(2026, 5, 4, h, 0, 0, 0, time.UTC) }
	iv := func(a, b int) Interval { return Interval{Start: at(a), End: at(b)} }
	tests := []struct {
		name string
		a, b Interval
		want bool
	}{
		{"identical", iv(10, 12), iv(10, 12), true},
		{"partial overlap", iv(10, 12), iv(11, 13), true},
		{"contained", iv(10, 14), iv(11, 12), true},
		{"touching: a ends when b starts", iv(10, 12), iv(12, 14), false},
		{"touching: b ends when a starts", iv(12, 14), iv(10, 12), false},
		{"disjoint", iv(8, 9), iv(10, 11), false},
		{"same start", iv(10, 11), iv(10, 14), true},
		{"same end", iv(10, 14), iv(13, 14), true},
		{"empty at start", iv(10, 10), iv(10, 12), false},
		{"empty strictly inside", iv(11, 11), iv(10, 12), false},
		{"containing an empty one", iv(10, 12), iv(11, 11), false},
		{"reversed", iv(12, 10), iv(9, 13), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Overlaps(tt.b); got != tt.want {
				t.Errorf("Overlaps = %v, want %v", got, tt.want)
			}
			if got := tt.b.Overlaps(tt.a); got != tt.want {
				t.Errorf("Overlaps (swapped) = %v, want %v", got, tt.want)
			}
		})
	}
	// Different locations, same instants.
	paris := mustLocation(t, "Europe/Paris")
	a := Interval{Start: at(10).In(paris), End: at(12).In(paris)}
	if a.Overlaps(iv(12, 13)) {
		t.Errorf("touching intervals in different locations overlap")
	}
	if d := iv(10, 12).Duration(); d != 2*time.Hour {
		t.Errorf("Duration = %v, want 2h", d)
	}
}

func mustLocation(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadLocation(name)
	if err != nil {
		t.Fatalf("LoadLocation(%q): %v", name, err)
	}
	return loc
}
