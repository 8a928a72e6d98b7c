package bolt

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// mappedKB is the resident part of this process's mapping of file, in kB
// (/proc/self/smaps).
func mappedKB(t *testing.T, file string) int64 {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var kb int64
	in := false
	for line := range strings.Lines(string(raw)) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-"): // a mapping's header
			in = len(f) >= 6 && f[5] == file
		case in && len(f) == 3 && f[0] == "Rss:":
			v, _ := strconv.ParseInt(f[1], 10, 64)
			kb += v
		}
	}
	return kb
}

// TestLongScanReleasesMappedPages: a report over many sessions leaves the
// data file's pages out of the process's resident memory, and the same
// report reads the same figures whether or not the pages were dropped
// before it.
func TestLongScanReleasesMappedPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fabgate.db")
	start := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	s, err := Open(path, Options{Now: func() time.Time { return start.AddDate(1, 0, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	m, err := s.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter, Prices: map[string]int64{"student": 1200}})
	if err != nil {
		t.Fatal(err)
	}
	mk, err := s.CreateMember(ctx, fablab.Member{Name: "Ada", Email: "ada@example.org", Group: "student"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2_000
	seeds := make([]fablab.Session, n)
	for i := range seeds {
		from := start.Add(time.Duration(i) * 15 * time.Minute)
		end := from.Add(10 * time.Minute)
		seeds[i] = fablab.Session{MachineID: m.ID, MemberID: mk.ID, DeviceID: "laser-1", Started: from, Until: end, Ended: &end,
			EndReason: fablab.EndTapOut, Confirmed: true, Billable: true}
	}
	if err := s.SeedBilledSessions(ctx, seeds); err != nil {
		t.Fatal(err)
	}
	to := start.Add(n * 15 * time.Minute)

	old := releaseAfter
	defer func() { releaseAfter = old }()
	releaseAfter = 1 << 62 // never
	kept, err := s.UsageReport(ctx, start, to, "machine")
	if err != nil {
		t.Fatal(err)
	}
	before := mappedKB(t, path)
	if before < 256 {
		t.Fatalf("a scan of %d sessions left %d kB of the file mapped; the test needs more to see a release", n, before)
	}

	releaseAfter = n / 2
	released, err := s.UsageReport(ctx, start, to, "machine")
	if err != nil {
		t.Fatal(err)
	}
	after := mappedKB(t, path)
	t.Logf("mapped: %d kB after the report, %d kB after the report that released", before, after)
	if after > before/4 {
		t.Errorf("after a long report %d kB of the data file stay mapped, %d kB before the release: want most of it dropped", after, before)
	}
	if !reflect.DeepEqual(kept, released) {
		t.Errorf("the report differs once pages are dropped:\n%+v\n%+v", kept, released)
	}
	if got := fmt.Sprint(released.Rows[0].UsedMinutes); got != fmt.Sprint(n*10) {
		t.Errorf("used minutes %s, want %d", got, n*10)
	}
	// The file reads back whole after the release.
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
