package httpapi

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestRFC3339WriterMatchesAppendFormat checks the availability document's
// time writer against time.RFC3339 byte for byte, with one writer carried
// across zone periods (both DST changes of 2026 in Paris), locations and
// out-of-order instants, as its cache of the last period must not leak.
func TestRFC3339WriterMatchesAppendFormat(t *testing.T) {
	var locs []*time.Location
	for _, name := range []string{"Europe/Paris", "America/St_Johns", "Asia/Kathmandu", "UTC", "Australia/Lord_Howe"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, loc)
	}
	var instants []time.Time
	for _, base := range []time.Time{
		time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC),  // spring change in Paris
		time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), // autumn change
		time.Date(1850, 1, 1, 0, 0, 0, 0, time.UTC),   // local mean time: offsets with seconds
	} {
		for m := -180; m <= 240; m += 7 {
			instants = append(instants, base.Add(time.Duration(m)*time.Minute+time.Duration(m%3)*time.Second+time.Duration(m)*time.Millisecond))
		}
	}
	var w rfc3339Writer
	check := func(u time.Time, loc *time.Location) {
		t.Helper()
		tl := u.In(loc)
		want := tl.Format(time.RFC3339)
		if got := string(w.append(nil, tl)); got != want {
			t.Fatalf("%v in %s: got %s, want %s", u, loc, got, want)
		}
	}
	// Location by location (the cache hits), then switching location at
	// every instant (it misses).
	for _, loc := range locs {
		for _, u := range instants {
			check(u, loc)
		}
		for i := len(instants) - 1; i >= 0; i-- { // backwards across the changes
			check(instants[i], loc)
		}
	}
	for _, u := range instants {
		for _, loc := range locs {
			check(u, loc)
		}
	}
	// Every year 0–9999 and a little beyond (written as time.RFC3339 does),
	// leap days, the turns of centuries, and seconds before 1970.
	rng := rand.New(rand.NewPCG(1, 2))
	lo, hi := time.Date(-2, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(10002, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for i := 0; i < 20000; i++ {
		check(time.Unix(lo+rng.Int64N(hi-lo), rng.Int64N(1e9)), locs[i%len(locs)])
	}
	for _, y := range []int{0, 1, 4, 100, 400, 1600, 1900, 1969, 1970, 2000, 2024, 2100, 9999} {
		for _, d := range []time.Time{time.Date(y, 2, 28, 23, 59, 59, 0, time.UTC), time.Date(y, 2, 29, 0, 0, 0, 0, time.UTC), time.Date(y, 12, 31, 23, 59, 59, 999, time.UTC), time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)} {
			check(d, time.UTC)
			check(d.Add(-time.Nanosecond), time.UTC)
		}
	}
}
