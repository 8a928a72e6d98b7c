//go:build linux

package bolt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

func TestStorageFullClassifies(t *testing.T) {
	pathErr := func(errno syscall.Errno) error {
		return &fs.PathError{Op: "write", Path: "/data/fabgate.db", Err: errno}
	}
	tests := []struct {
		name string
		err  error
		full bool
	}{
		{"disk full on a write", pathErr(syscall.ENOSPC), true},
		{"file size limit on a write", pathErr(syscall.EFBIG), true},
		{"quota on a write", fmt.Errorf("commit: %w", pathErr(syscall.EDQUOT)), true},
		// bbolt's growth of the file, reported as text.
		{"file size limit on the growth", fmt.Errorf("file resize error: %s", pathErr(syscall.EFBIG)), true},
		{"disk full on the sync of the growth", fmt.Errorf("file sync error: %s", pathErr(syscall.ENOSPC)), true},
		{"internal error wrapping a full disk", internalErr(pathErr(syscall.ENOSPC)), true},
		{"other I/O error", pathErr(syscall.EIO), false},
		{"a refusal whose text says it", fablab.Errorf(fablab.EINVALID, "the name %q is taken", "file too large"), false},
		{"already classified", storageFull(pathErr(syscall.ENOSPC)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := storageFull(tt.err)
			if got := fablab.ErrorCode(err) == fablab.ESTORAGEFULL; got != tt.full {
				t.Fatalf("storageFull(%v) = %v: storage full %t, want %t", tt.err, err, got, tt.full)
			}
			if !tt.full && err != tt.err {
				t.Errorf("storageFull changed %v into %v", tt.err, err)
			}
			if tt.full && (!errors.Is(err, tt.err) || !strings.Contains(fablab.ErrorMessage(err), "free disk space")) {
				t.Errorf("storageFull(%v) = %v: loses the cause or does not say what to do", tt.err, err)
			}
		})
	}
	if storageFull(nil) != nil {
		t.Error("storageFull(nil) is not nil")
	}
}

// internalErr wraps err as an internal error, as the store's helpers do.
func internalErr(err error) error { return fablab.Internal(err, "write") }

// diskFullChildEnv, set to 1, makes TestStoreDiskFull run its body: it runs
// in a process of its own, whose file size limit it lowers.
const diskFullChildEnv = "FABGATE_TEST_DISKFULL_CHILD"

// TestStoreDiskFull fills a store's disk for real — the process's file
// size limit (RLIMIT_FSIZE) lowered to the data file's size, so that the
// file cannot grow, and then to its meta pages, so that no page can be
// written — and checks that writes then fail with ESTORAGEFULL and leave
// nothing of themselves: not in the file, not in the decode caches (a
// value read in the failed transaction is not served afterwards), not in
// the invoice numbers; that concurrent writers all get the error; and that
// once the limit is raised the same store, never reopened, does
// everything it refused.
func TestStoreDiskFull(t *testing.T) {
	if os.Getenv(diskFullChildEnv) != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStoreDiskFull$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), diskFullChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestStoreDiskFull") {
			t.Fatalf("the disk-full process: %v\n%s", err, out)
		}
		for line := range strings.Lines(string(out)) {
			if strings.HasPrefix(strings.TrimSpace(line), "full_test.go:") {
				t.Log(strings.TrimSpace(line))
			}
		}
		return
	}

	ctx := context.Background()
	now := time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "fabgate.db")
	opts := Options{Now: func() time.Time { return now }}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	m, err := s.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter, Prices: map[string]int64{"student": 1200, "sme": 3000}})
	if err != nil {
		t.Fatal(err)
	}
	var members []fablab.Member
	var seeds []fablab.Session
	for i, group := range []string{"student", "sme", "student"} {
		mem, err := s.CreateMember(ctx, fablab.Member{Email: fmt.Sprintf("maker%d@full.test", i), Name: fmt.Sprintf("Maker %d", i), Group: group})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, mem)
		for d := range 2 {
			started := time.Date(2026, 4, 7+7*d, 8+2*i, 0, 0, 0, time.UTC)
			ended := started.Add(time.Hour)
			seeds = append(seeds, fablab.Session{MachineID: m.ID, MemberID: mem.ID, DeviceID: "laser", Started: started, Until: ended, Ended: &ended,
				EndReason: fablab.EndTapOut, Confirmed: true, Billable: true})
		}
	}
	slices.SortFunc(seeds, func(a, b fablab.Session) int { return a.Started.Compare(b.Started) })
	if err := s.SeedBilledSessions(ctx, seeds); err != nil {
		t.Fatal(err)
	}
	april := fablab.Period{Year: 2026, Month: time.April}
	// The decode caches hold what the file holds.
	before := readThree(t, s, members[0].ID, m.ID)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	setFileLimit(t, uint64(fi.Size()), limit.Max)

	// Trainings with a long description, then short ones, until three in
	// a row are refused: the room the file had left is used up.
	made := 0
	for _, desc := range []string{strings.Repeat("d", 3000), ""} {
		for inARow, i := 0, 0; inARow < 3; i++ {
			if i == 10_000 {
				t.Fatalf("10000 trainings stored in a file held at %d bytes", fi.Size())
			}
			_, err := s.CreateTraining(ctx, fablab.Training{Name: fmt.Sprintf("Filler %d %d", len(desc), i), Description: desc})
			switch fablab.ErrorCode(err) {
			case "":
				made, inARow = made+1, 0
			case fablab.ESTORAGEFULL:
				inARow++
				if !errors.Is(err, syscall.EFBIG) && !strings.Contains(err.Error(), "file too large") || !strings.Contains(fablab.ErrorMessage(err), "free disk space") {
					t.Fatalf("the refusal: %v (shown as %q)", err, fablab.ErrorMessage(err))
				}
			default:
				t.Fatalf("training %d: %v", i, err)
			}
		}
	}
	t.Logf("the data file held at %d bytes took %d more trainings", fi.Size(), made)
	version, err := s.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}

	checkFile(t, s, "with the file full")

	// A file with free pages may still take a write that needs few (one
	// to small, inline buckets, such as April's invoice run here): what a
	// write can do depends on the pages it needs. Below, no write can land
	// at all: the limit lets nothing be written past the two meta pages,
	// and every commit writes pages past them (its freelist at least),
	// when it does not fail first on growing the file.
	setFileLimit(t, 2*uint64(os.Getpagesize()), limit.Max)
	// The invoice run is refused whole.
	if _, _, err := s.RunInvoices(ctx, april); fablab.ErrorCode(err) != fablab.ESTORAGEFULL {
		t.Fatalf("April's invoice run with the disk full: %v", err)
	}
	checkUninvoiced(t, s, april, len(seeds))

	// A write that changed a member, a machine and the settings, and read
	// them back through the decode caches before its commit failed: the
	// caches must not serve what the file never got.
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := getMember(tx, members[0].ID)
		if err != nil {
			return err
		}
		r.Member.Name, r.Member.PrepaidMinutes = "Changed", 600
		if err := putMember(tx, r.Member, r.SessionGen); err != nil {
			return err
		}
		mc, err := getMachine(tx, m.ID)
		if err != nil {
			return err
		}
		mc.Name, mc.Prices["student"] = "Changed", 1
		if err := putJSON(tx.Bucket(bMachines), itob(m.ID), mc); err != nil {
			return err
		}
		st, err := loadSettings(tx)
		if err != nil {
			return err
		}
		st.Name = "Changed"
		if err := putJSON(tx.Bucket(bMeta), kSettings, st); err != nil {
			return err
		}
		got := readThreeTx(t, s, tx, members[0].ID, m.ID)
		if got.member.Name != "Changed" || got.machine.Price != 1 || got.settings.Name != "Changed" {
			t.Errorf("the transaction does not read its own writes: %+v", got)
		}
		return nil
	})
	if fablab.ErrorCode(err) != fablab.ESTORAGEFULL {
		t.Fatalf("the write of a member, a machine and the settings with the disk full: %v", err)
	}
	if after := readThree(t, s, members[0].ID, m.ID); !after.same(before) {
		t.Errorf("after a failed commit the store serves %+v, the file holds %+v", after, before)
	}

	// Writers at once (sharing transactions) all get the refusal.
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.batch(ctx, func(tx *bbolt.Tx) error {
				return tx.Bucket(bTrainings).Put(itob(fablab.ID(1_000_000+i)), []byte(`{"id":"1","name":"x"}`))
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if fablab.ErrorCode(err) != fablab.ESTORAGEFULL {
			t.Errorf("concurrent write %d with the disk full: %v", i, err)
		}
	}
	if v, err := s.Version(ctx); err != nil || v != version {
		t.Errorf("the file's version went from %d to %d (%v) with every write refused", version, v, err)
	}
	checkFile(t, s, "with the disk full")

	// The file still opens, and serves what it holds (`fabgate check`,
	// `fabgate backup --data`, a server's reads): opening it writes
	// nothing when it needs no migration.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, opts); err != nil {
		t.Fatalf("open the data file with the disk full: %v", err)
	}
	if after := readThree(t, s, members[0].ID, m.ID); !after.same(before) {
		t.Errorf("reopened with the disk full, the store serves %+v, the file holds %+v", after, before)
	}
	if _, err := s.CreateTraining(ctx, fablab.Training{Name: "Reopened"}); fablab.ErrorCode(err) != fablab.ESTORAGEFULL {
		t.Errorf("a training in the file reopened with the disk full: %v", err)
	}
	checkUninvoiced(t, s, april, len(seeds))
	checkFile(t, s, "reopened with the disk full")

	// Space is back: the same store does what it refused.
	setFileLimit(t, limit.Cur, limit.Max)
	invs, created, err := s.RunInvoices(ctx, april)
	if err != nil || !created || len(invs) != len(members) {
		t.Fatalf("April's invoice run once space is back: %d invoices, created %t, %v", len(invs), created, err)
	}
	for i, inv := range invs {
		if want := fablab.InvoiceNumber("FG", 2026, uint64(i+1)); inv.Number != want || len(inv.Lines) != 2 {
			t.Errorf("invoice %d: %s with %d lines, want %s with 2", i+1, inv.Number, len(inv.Lines), want)
		}
	}
	if _, err := s.CreateTraining(ctx, fablab.Training{Name: "After"}); err != nil {
		t.Errorf("a training once space is back: %v", err)
	}
	if _, err := s.UpdateMember(ctx, members[0].ID, func(mem *fablab.Member) error { mem.Name = "Renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := readThree(t, s, members[0].ID, m.ID); got.member.Name != "Renamed" || !got.machine.equal(before.machine) {
		t.Errorf("once space is back the store serves %+v", got)
	}
	checkFile(t, s, "once space is back")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, opts); err != nil {
		t.Fatal(err)
	}
	checkFile(t, s, "reopened")
}

// setFileLimit sets this process's file size limit.
func setFileLimit(t *testing.T, cur, max uint64) {
	t.Helper()
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: cur, Max: max}); err != nil {
		t.Fatalf("set the file size limit to %d: %v", cur, err)
	}
}

// three is a member, a machine and the settings as the store serves them.
type three struct {
	member   fablab.Member
	machine  machineView
	settings fablab.Settings
}

type machineView struct {
	Name  string
	Price int64
}

func (a machineView) equal(b machineView) bool { return a == b }

func (a three) same(b three) bool {
	return a.member.Name == b.member.Name && a.member.PrepaidMinutes == b.member.PrepaidMinutes &&
		a.machine.equal(b.machine) && a.settings.Name == b.settings.Name
}

func readThree(t *testing.T, s *Store, member, machine fablab.ID) three {
	t.Helper()
	var out three
	if err := s.db.View(func(tx *bbolt.Tx) error {
		out = readThreeTx(t, s, tx, member, machine)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The public reads agree.
	if mem, err := s.Member(context.Background(), member); err != nil || mem.Name != out.member.Name {
		t.Errorf("Member: %+v %v, the cache read %+v", mem, err, out.member)
	}
	return out
}

func readThreeTx(t *testing.T, s *Store, tx *bbolt.Tx, member, machine fablab.ID) three {
	t.Helper()
	r, err := s.readMember(tx, member)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.readMachine(tx, machine)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.readSettings(tx)
	if err != nil {
		t.Fatal(err)
	}
	return three{member: r.Member, machine: machineView{m.Name, m.Prices["student"]}, settings: st}
}

// checkUninvoiced checks that period's run left nothing: not run, no
// invoice, no number taken, every charge uninvoiced.
func checkUninvoiced(t *testing.T, s *Store, period fablab.Period, charges int) {
	t.Helper()
	ctx := context.Background()
	ran, err := s.InvoicesRun(ctx, period)
	if err != nil || ran {
		t.Errorf("the refused run is recorded as run: %t %v", ran, err)
	}
	if invs, err := s.Invoices(ctx, InvoiceFilter{}); err != nil || len(invs) != 0 {
		t.Errorf("invoices after the refused run: %+v %v", invs, err)
	}
	if seq := RawValue(s, string(bInvoiceSeq), YearKey(2026)); seq != nil {
		t.Errorf("the refused run took invoice numbers: %x", seq)
	}
	cs, err := s.Charges(ctx, ChargeFilter{})
	if err != nil || len(cs) != charges {
		t.Fatalf("charges: %d %v, want %d", len(cs), err, charges)
	}
	for _, c := range cs {
		if inv, err := s.InvoiceOfCharge(ctx, c.ID); err != nil || inv != 0 {
			t.Errorf("charge %s is taken by invoice %s (%v) after the refused run", c.ID, inv, err)
		}
	}
}

// checkFile runs bbolt's check and the lab's invariants on the store.
func checkFile(t *testing.T, s *Store, when string) {
	t.Helper()
	if err := s.Check(); err != nil {
		t.Errorf("%s: bbolt check: %v", when, err)
	}
	if err := s.CheckInvariants(context.Background()); err != nil {
		t.Errorf("%s: invariants: %v", when, err)
	}
}
