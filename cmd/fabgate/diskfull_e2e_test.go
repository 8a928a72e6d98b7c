//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// The disk-full test's lab time: a Monday morning in May (the lab open,
// the machines free), with April's use billed and not invoiced yet.
var (
	dfStart = time.Date(2026, 5, 4, 10, 0, 0, 0, parisTZ)
	dfMonth = fablab.Period{Year: 2026, Month: time.April}
)

// TestDiskFullE2E fills the disk of a running `fabgate serve` and checks
// that it refuses what it cannot store, clearly, without writing half of
// it, keeps serving reads, and works again as soon as space is freed,
// without a restart:
//   - bookings (POST /api/v1/bookings) are made until one is refused for
//     want of space: 507 storage_full, a problem+json saying what the
//     operator must do (in French too); the refused booking is nowhere;
//   - April's invoice run is refused so: no invoice, no number taken, no
//     charge marked invoiced;
//   - a tap that would open a session is denied (server_error), and the
//     relay stays off; a tap-out is denied and its session stays open,
//     with its relay on (the file and the relays still agree);
//   - logging in is refused so; reads (lists, availability, health, the
//     hot backup while it fits) are served; a hot backup that does not fit
//     is refused, saying what to do instead;
//   - once space is back (the limit raised, the server untouched), the
//     same booking is made, the same run issues April's invoices numbered
//     1 to n with exactly April's charges, and taps open and close
//     sessions;
//   - the file keeps its invariants after every step (checked on a hot
//     backup), and `fabgate check` passes once the server is stopped.
//
// The full disk is real: the server's file size limit (RLIMIT_FSIZE, set
// from the test with prlimit) is lowered to its data file's size, so that
// the file cannot grow (bbolt's writes past the limit fail with EFBIG; Go
// ignores SIGXFSZ). The file still has free pages, so bookings are made
// until a write actually fails, not after a guessed number.
func TestDiskFullE2E(t *testing.T) {
	began := time.Now()
	lab, april := newDiskFullLab(t)
	p := lab.start(t)
	lab.login(t, p)
	lab.awaitReconciled(t, p, "at the start")
	lab.diskFullInvariants(t, p, "at the start")

	// Before the disk fills: a session runs on the first machine.
	running, walkIn := lab.devices[0], lab.devices[1]
	if c := dfTap(t, running, running.uids[0]); c.Op != wire.OpUnlock {
		t.Fatalf("tap before the disk filled: %+v, want an unlock", c)
	}
	lab.awaitReconciled(t, p, "after the first unlock")
	open := dfOpenSessions(t, lab, p)
	if len(open) != 1 || open[0].MachineID != running.machine {
		t.Fatalf("open sessions before the disk filled: %+v", open)
	}
	s1 := open[0]
	lab.diskFullInvariants(t, p, "with a session running")
	setup := time.Since(began)

	// The disk fills.
	fillStart := time.Now()
	size := dfFileSize(t, lab)
	dfSetFileLimit(t, p, uint64(size))
	// Bookings are made until three in a row are refused, then trainings
	// and then logins (smaller writes: a login stores one token) until
	// three in a row are: what room the file had left is used up. (One
	// refusal is not enough: pages freed by the last commits may still be
	// held by a reader, and found free by the next write.)
	fill := lab.machines[2] // no device: its bookings do not change what taps decide
	fillUntilRefused := func(what string, req func(i int) (path string, body map[string]any)) (made int, refused map[string]any) {
		inARow := 0
		for i := 0; inARow < 3; i++ {
			if i == 5000 {
				t.Fatalf("5000 %s made with the data file held at %d bytes: the file never filled", what, size)
			}
			path, body := req(i)
			r := dfDo(t, p, "POST", path, lab.admin, "", body)
			switch r.status {
			case http.StatusOK, http.StatusCreated:
				made, inARow = made+1, 0
			case http.StatusInsufficientStorage:
				inARow, refused = inARow+1, body
			default:
				t.Fatalf("%s %d while filling the disk: %d %s", what, i, r.status, r.body)
			}
		}
		return made, refused
	}
	made, refused := fillUntilRefused("bookings", func(i int) (string, map[string]any) {
		return "/api/v1/bookings", dfBookingRequest(lab, fill, i)
	})
	trainings, _ := fillUntilRefused("trainings", func(i int) (string, map[string]any) {
		return "/api/v1/trainings", map[string]any{"name": fmt.Sprintf("Filler %d", i)}
	})
	logins, _ := fillUntilRefused("logins", func(int) (string, map[string]any) {
		return "/api/v1/auth/login", map[string]any{"email": crashAdminEmail, "password": crashAdminPassword}
	})
	filled := time.Since(fillStart)
	t.Logf("the data file held at %d bytes took %d more bookings, %d trainings and %d logins (%s)", size, made, trainings, logins, filled.Round(time.Millisecond))
	refusal := dfDo(t, p, "POST", "/api/v1/bookings", lab.admin, "", refused)

	// The refusal says what happened and what to do, in the client's language.
	p1 := refusal.problem(t, http.StatusInsufficientStorage, fablab.ESTORAGEFULL)
	for _, want := range []string{"storage is full", "nothing was saved", "free disk space"} {
		if !strings.Contains(p1.Detail, want) {
			t.Errorf("the refusal's detail %q does not say %q", p1.Detail, want)
		}
	}
	fr := dfDo(t, p, "POST", "/api/v1/bookings", lab.admin, "fr", refused).problem(t, http.StatusInsufficientStorage, fablab.ESTORAGEFULL)
	if !strings.Contains(fr.Detail, "stockage du serveur est plein") || !strings.Contains(fr.Detail, "libérer de l'espace disque") {
		t.Errorf("the refusal in French: %q", fr.Detail)
	}

	// The refused booking is nowhere: not listed, its slot free.
	start, end := refused["start"].(time.Time), refused["end"].(time.Time)
	if bs := dfBookingsOf(t, lab, p, "machine_id="+fill.String()); len(bs) != made || slices.ContainsFunc(bs, func(b fablab.Booking) bool { return b.Start.Equal(start) }) {
		t.Errorf("bookings of the machine after the refusal: %d (%d made); the refused slot %s among them: %t",
			len(bs), made, start, slices.ContainsFunc(bs, func(b fablab.Booking) bool { return b.Start.Equal(start) }))
	}
	var avail struct{ Free, Busy []fablab.Interval }
	r := dfDo(t, p, "GET", "/api/v1/machines/"+fill.String()+"/availability?from="+url.QueryEscape(start.Format(time.RFC3339))+"&to="+url.QueryEscape(end.Format(time.RFC3339)), lab.admin, "", nil)
	if r.decode(t, &avail); len(avail.Busy) != 0 {
		t.Errorf("the refused booking's slot is busy: %+v", avail)
	}
	lab.diskFullInvariants(t, p, "after the refused booking")

	// April's invoice run is refused whole.
	dfDo(t, p, "POST", "/api/v1/invoices/run?period="+dfMonth.String(), lab.admin, "", nil).problem(t, http.StatusInsufficientStorage, fablab.ESTORAGEFULL)
	var invs []fablab.Invoice
	if dfDo(t, p, "GET", "/api/v1/invoices", lab.admin, "", nil).decode(t, &invs); len(invs) != 0 {
		t.Errorf("invoices after the refused run: %+v", invs)
	}
	snap := lab.diskFullInvariants(t, p, "after the refused invoice run")
	// (No number was taken either: the run below, once space is back,
	// numbers its invoices from 1.)
	if snap.ran || len(snap.invoices) != 0 || len(snap.invoiced) != 0 {
		t.Errorf("after the refused invoice run, the file holds: run %t, %d invoices, %d charges invoiced",
			snap.ran, len(snap.invoices), len(snap.invoiced))
	}

	// Taps: one that would open a session is denied and nothing switches
	// on; the running session's tap-out is denied and it keeps running.
	if c := dfTap(t, walkIn, walkIn.uids[0]); c.Op != wire.OpDeny || c.Reason != wire.ReasonServerError {
		t.Errorf("tap on a free machine with the disk full: %+v, want deny %s", c, wire.ReasonServerError)
	}
	if c := dfTap(t, running, running.uids[0]); c.Op != wire.OpDeny || c.Reason != wire.ReasonServerError {
		t.Errorf("tap-out with the disk full: %+v, want deny %s", c, wire.ReasonServerError)
	}
	lab.holdsReconciled(t, p, 300*time.Millisecond)
	if open := dfOpenSessions(t, lab, p); len(open) != 1 || open[0].ID != s1.ID {
		t.Errorf("open sessions after the taps refused: %+v, want session %s alone", open, s1.ID)
	}
	if relay, _ := walkIn.sim.Relay(); relay != wire.RelayOff {
		t.Errorf("the free machine's relay is %s after a refused tap", relay)
	}
	if relay, sess := running.sim.Relay(); relay != wire.RelayOn || sess != s1.ID.String() {
		t.Errorf("the running machine's relay is %s (session %s) after its refused tap-out", relay, sess)
	}

	// Logging in needs a write (it was refused above); reading does not.
	for _, path := range []string{"/healthz", "/api/v1/machines", "/api/v1/members", "/api/v1/charges?from=2026-04-01T00:00:00Z", "/api/v1/sessions?active=true", "/api/v1/audit"} {
		if r := dfDo(t, p, "GET", path, lab.admin, "", nil); r.status != 200 {
			t.Errorf("GET %s with the disk full: %d %s", path, r.status, r.body)
		}
	}
	lab.diskFullInvariants(t, p, "after the refused taps")
	if !strings.Contains(p.stderr.String(), "the disk is full") {
		t.Errorf("the server's log does not tell the operator the disk is full:\n%s", p.stderr.String())
	}

	// The hot backup is written beside the data file first: with no room
	// left for it either (nothing can be written past the data file's two
	// meta pages), it is refused, saying what to do instead.
	dfSetFileLimit(t, p, 2*uint64(os.Getpagesize()))
	bp := dfDo(t, p, "POST", "/api/v1/backup", lab.admin, "", nil).problem(t, http.StatusInsufficientStorage, fablab.ESTORAGEFULL)
	if !strings.Contains(bp.Detail, "hot backup") || !strings.Contains(bp.Detail, "fabgate backup --data") {
		t.Errorf("the refused backup's detail: %q", bp.Detail)
	}
	if leftover, _ := filepath.Glob(filepath.Join(lab.data, ".backup-*")); len(leftover) != 0 {
		t.Errorf("the refused backup left %v", leftover)
	}

	// Space is freed: the same server takes the same requests.
	dfSetFileLimit(t, p, unix.RLIM_INFINITY)
	var again fablab.Booking
	r = dfDo(t, p, "POST", "/api/v1/bookings", lab.admin, "", refused)
	if r.status != http.StatusCreated {
		t.Fatalf("the refused booking, once space is back: %d %s", r.status, r.body)
	}
	r.decode(t, &again)
	if !again.Start.Equal(start) || !again.End.Equal(end) || again.State != fablab.BookingConfirmed {
		t.Errorf("the booking made once space is back: %+v", again)
	}
	var run struct {
		Created  bool
		Invoices []fablab.Invoice
	}
	if r := dfDo(t, p, "POST", "/api/v1/invoices/run?period="+dfMonth.String(), lab.admin, "", nil); r.status != http.StatusCreated {
		t.Fatalf("April's invoice run once space is back: %d %s", r.status, r.body)
	} else {
		r.decode(t, &run)
	}
	dfCheckRun(t, run.Invoices, april)
	if c := dfTap(t, running, running.uids[0]); c.Op != wire.OpLock || c.SessionID != s1.ID.String() {
		t.Errorf("tap-out once space is back: %+v, want the lock of session %s", c, s1.ID)
	}
	if c := dfTap(t, walkIn, walkIn.uids[0]); c.Op != wire.OpUnlock {
		t.Errorf("tap once space is back: %+v, want an unlock", c)
	}
	lab.awaitReconciled(t, p, "once space is back")
	if c := dfTap(t, walkIn, walkIn.uids[0]); c.Op != wire.OpLock {
		t.Errorf("tap-out once space is back: %+v, want a lock", c)
	}
	lab.awaitReconciled(t, p, "after the last tap-out")
	if code, err := lab.do(p, "POST", "/api/v1/jobs/billing/run", nil, nil); err != nil || code != 200 {
		t.Fatalf("billing run once space is back: %d %v", code, err)
	}
	snap = lab.diskFullInvariants(t, p, "once space is back")
	if !snap.ran || len(snap.invoices) != len(run.Invoices) || len(snap.invoiced) != len(april.all()) || snap.unbilled != 0 {
		t.Errorf("once space is back, the file holds: run %t, %d invoices (%d issued), %d charges invoiced (%d in April), %d sessions unbilled",
			snap.ran, len(snap.invoices), len(run.Invoices), len(snap.invoiced), len(april.all()), snap.unbilled)
	}
	if len(snap.sessions) != 2 {
		t.Errorf("sessions in May: %+v, want the two that ran", snap.sessions)
	}

	p.terminate(t)
	lab.check(t, "after the clean stop")
	t.Logf("setup %s, filling %s, the rest %s", setup.Round(time.Millisecond), filled.Round(time.Millisecond), (time.Since(began) - setup - filled).Round(time.Millisecond))
}

// aprilCharges are the charges seeded in April, by payer.
type aprilCharges map[fablab.Payer][]fablab.ID

func (a aprilCharges) all() []fablab.ID {
	var out []fablab.ID
	for _, ids := range a {
		out = append(out, ids...)
	}
	return out
}

// newDiskFullLab writes the lab's data file — an admin, four makers, three
// machines (two with a device), and April's sessions, billed — and starts
// the broker and the devices.
func newDiskFullLab(t *testing.T) (*crashLab, aprilCharges) {
	t.Helper()
	ctx := context.Background()
	lab := &crashLab{data: t.TempDir(), clock: &crashClock{}}
	lab.clock.jumpTo(dfStart)
	s, err := bolt.Open(filepath.Join(lab.data, "fabgate.db"), bolt.Options{Now: lab.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var seeds []fablab.Session
	secrets := seedDeviceLab(t, s, lab, deviceLab{devices: 2, prefix: "full", domain: "full.test", uid: "04F011"}, func(d *crashDevice, mem fablab.Member, j int) {
		// Three uses in April, of 45 minutes each.
		for k := range 3 {
			started := time.Date(2026, 4, 6+7*k+j, 14, 0, 0, 0, parisTZ)
			ended := started.Add(45 * time.Minute)
			seeds = append(seeds, fablab.Session{MachineID: d.machine, MemberID: mem.ID, DeviceID: d.id, Started: started, Until: started.Add(2 * time.Hour), Ended: &ended,
				EndReason: fablab.EndTapOut, Confirmed: true, Billable: true})
		}
	})
	slices.SortFunc(seeds, func(a, b fablab.Session) int { return a.Started.Compare(b.Started) })
	if err := s.SeedBilledSessions(ctx, seeds); err != nil {
		t.Fatal(err)
	}
	charges, err := s.Charges(ctx, bolt.ChargeFilter{})
	if err != nil {
		t.Fatal(err)
	}
	april := aprilCharges{}
	for _, c := range charges {
		april[c.Payer] = append(april[c.Payer], c.ID)
	}
	if len(charges) != len(seeds) || len(april) != 4 {
		t.Fatalf("seeded %d sessions, %d charges for %d payers", len(seeds), len(charges), len(april))
	}
	lab.startDevices(t, s, secrets)
	return lab, april
}

// dfFileSize is the data file's size now.
func dfFileSize(t *testing.T, lab *crashLab) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(lab.data, "fabgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// dfSetFileLimit sets the server's file size limit (its soft
// RLIMIT_FSIZE; the hard one stays as it was, so the limit can be raised
// again), as `prlimit --pid … --fsize=` does.
func dfSetFileLimit(t *testing.T, p *fabgateProc, limit uint64) {
	t.Helper()
	pid := p.cmd.Process.Pid
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &old); err != nil {
		t.Fatalf("read the server's file size limit: %v", err)
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: min(limit, old.Max), Max: old.Max}, nil); err != nil {
		t.Fatalf("set the server's file size limit to %d: %v", limit, err)
	}
}

// dfBookingRequest is the i-th booking of the filling: half-hour slots of
// the machine's weekdays, from the week after next on, for the makers in
// turn, made by the admin.
func dfBookingRequest(lab *crashLab, machine fablab.ID, i int) map[string]any {
	const perDay = 24 // 09:00 to 21:00
	day := dfStart.AddDate(0, 0, 14)
	for n := i / perDay; ; day = day.AddDate(0, 0, 1) {
		if day.Weekday() == time.Saturday || day.Weekday() == time.Sunday {
			continue
		}
		if n == 0 {
			break
		}
		n--
	}
	start := time.Date(day.Year(), day.Month(), day.Day(), 9, 0, 0, 0, parisTZ).Add(time.Duration(i%perDay) * 30 * time.Minute)
	return map[string]any{"machine_id": machine.String(), "member_id": lab.members[i%len(lab.members)].String(), "start": start, "end": start.Add(30 * time.Minute)}
}

// dfResponse is an answer of the server, read whole.
type dfResponse struct {
	what   string
	status int
	ctype  string
	body   []byte
}

// dfDo makes a request (lang: its Accept-Language, "" for none) and reads
// the answer.
func dfDo(t *testing.T, p *fabgateProc, method, path, token, lang string, body any) dfResponse {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if lang != "" {
		req.Header.Set("Accept-Language", lang)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\nserver log:\n%s", method, path, err, p.stderr.String())
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	return dfResponse{what: method + " " + path, status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: data}
}

// decode decodes a successful answer into v.
func (r dfResponse) decode(t *testing.T, v any) {
	t.Helper()
	if r.status >= 300 {
		t.Fatalf("%s: %d %s", r.what, r.status, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%s: decode %s: %v", r.what, r.body, err)
	}
}

// problem checks that the answer is a problem document with this status
// and code, and returns it.
func (r dfResponse) problem(t *testing.T, status int, code string) dfProblem {
	t.Helper()
	var p dfProblem
	if err := json.Unmarshal(r.body, &p); err != nil || r.status != status || r.ctype != "application/problem+json" || p.Status != status || p.Code != code || p.Detail == "" {
		t.Fatalf("%s: %d %s %s (%v), want a %d %s problem", r.what, r.status, r.ctype, r.body, err, status, code)
	}
	return p
}

type dfProblem struct {
	Status int
	Title  string
	Detail string
	Code   string
}

// dfTap taps uid on device d and returns the server's answer to that tap.
func dfTap(t *testing.T, d *crashDevice, uid string) wire.Command {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msgID, err := d.sim.Tap(ctx, uid)
	if err != nil {
		t.Fatalf("tap on %s: %v", d.id, err)
	}
	for {
		c, err := d.sim.Next(ctx)
		if err != nil {
			t.Fatalf("tap %s on %s was not answered: %v", msgID, d.id, err)
		}
		if c.TapID == msgID {
			return c
		}
	}
}

func dfOpenSessions(t *testing.T, lab *crashLab, p *fabgateProc) []fablab.Session {
	t.Helper()
	var open []fablab.Session
	dfDo(t, p, "GET", "/api/v1/sessions?active=true", lab.admin, "", nil).decode(t, &open)
	return open
}

func dfBookingsOf(t *testing.T, lab *crashLab, p *fabgateProc, query string) []fablab.Booking {
	t.Helper()
	var bs []fablab.Booking
	from, to := dfStart.UTC().Format(time.RFC3339), dfStart.AddDate(0, 11, 0).UTC().Format(time.RFC3339)
	dfDo(t, p, "GET", "/api/v1/bookings?"+query+"&from="+url.QueryEscape(from)+"&to="+url.QueryEscape(to), lab.admin, "", nil).decode(t, &bs)
	return bs
}

// dfCheckRun checks April's invoices: one per payer, numbered from 1
// without a gap, each with exactly that payer's April charges.
func dfCheckRun(t *testing.T, invs []fablab.Invoice, april aprilCharges) {
	t.Helper()
	if len(invs) != len(april) {
		t.Fatalf("April's run issued %d invoices, want %d (one per payer)", len(invs), len(april))
	}
	for i, inv := range invs {
		if want := fablab.InvoiceNumber("FG", 2026, uint64(i+1)); inv.Number != want {
			t.Errorf("invoice %d is numbered %s, want %s", i+1, inv.Number, want)
		}
		var got []fablab.ID
		for _, l := range inv.Lines {
			got = append(got, l.ChargeID)
		}
		want := slices.Clone(april[inv.Payer])
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("invoice %s of %s bills charges %v, want %v", inv.Number, inv.Payer, got, want)
		}
	}
}

// dfSnapshot is what diskFullInvariants read in the file.
type dfSnapshot struct {
	ran      bool // April's invoices were run
	invoices []fablab.Invoice
	invoiced map[fablab.ID]fablab.ID // charge → the invoice that took it
	unbilled int                     // ended sessions not billed
	sessions []fablab.Session        // the ended sessions of May
}

// diskFullInvariants takes a hot backup of the running server (which the
// server serves while the snapshot fits on its disk) and checks the
// invariants of the file it holds: bbolt's own check, the store's
// CheckInvariants, and through its lists: every booking in
// both its machine's and its member's index, the occupying ones of a
// machine never overlapping; at most one open session per machine; every
// charge on one invoice at most, as its line, invoice numbers without a
// gap. It returns what the ledger holds.
func (lab *crashLab) diskFullInvariants(t *testing.T, p *fabgateProc, when string) dfSnapshot {
	t.Helper()
	ctx := context.Background()
	r := dfDo(t, p, "POST", "/api/v1/backup", lab.admin, "", nil)
	if r.status != 200 {
		t.Fatalf("%s: hot backup: %d %s", when, r.status, r.body)
	}
	path := filepath.Join(t.TempDir(), "snapshot.db")
	if err := os.WriteFile(path, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := bolt.Open(path, bolt.Options{Now: lab.clock.Now})
	if err != nil {
		t.Fatalf("%s: open the backup: %v", when, err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Errorf("%s: bbolt check: %v", when, err)
	}
	if err := s.CheckInvariants(ctx); err != nil {
		t.Errorf("%s: invariants: %v", when, err)
	}

	from, to := dfStart.AddDate(0, -2, 0), dfStart.AddDate(1, 0, 0)
	byMachine := map[fablab.ID]fablab.Booking{}
	for _, m := range lab.machines {
		bs, err := s.Bookings(ctx, bolt.BookingFilter{MachineID: m, From: from, To: to})
		if err != nil {
			t.Fatalf("%s: bookings of machine %s: %v", when, m, err)
		}
		var occupying []fablab.Booking
		for _, b := range bs {
			if b.MachineID != m {
				t.Errorf("%s: booking %s of machine %s is listed under machine %s", when, b.ID, b.MachineID, m)
			}
			byMachine[b.ID] = b
			if b.Occupies() {
				occupying = append(occupying, b)
			}
		}
		for i := 1; i < len(occupying); i++ {
			if occupying[i].Start.Before(occupying[i-1].End) {
				t.Errorf("%s: bookings %s and %s of machine %s overlap", when, occupying[i-1].ID, occupying[i].ID, m)
			}
		}
		if sess, err := s.OpenSessionOn(ctx, m); err == nil && (sess.MachineID != m || !sess.Open()) {
			t.Errorf("%s: the open session of machine %s is %+v", when, m, sess)
		} else if err != nil && fablab.ErrorCode(err) != fablab.ENOTFOUND {
			t.Errorf("%s: open session of machine %s: %v", when, m, err)
		}
	}
	n := 0
	for _, m := range lab.members {
		bs, err := s.Bookings(ctx, bolt.BookingFilter{MemberID: m, From: from, To: to})
		if err != nil {
			t.Fatalf("%s: bookings of member %s: %v", when, m, err)
		}
		for _, b := range bs {
			n++
			if other, ok := byMachine[b.ID]; !ok || other.MemberID != m || !other.Start.Equal(b.Start) || other.State != b.State {
				t.Errorf("%s: booking %s of member %s (%+v) is listed by its machine as %+v (%t)", when, b.ID, m, b, other, ok)
			}
		}
	}
	if n != len(byMachine) {
		t.Errorf("%s: %d bookings listed by machine, %d by member", when, len(byMachine), n)
	}

	var snap dfSnapshot
	if snap.ran, err = s.InvoicesRun(ctx, dfMonth); err != nil {
		t.Fatal(err)
	}
	if snap.invoices, err = s.Invoices(ctx, bolt.InvoiceFilter{}); err != nil {
		t.Fatal(err)
	}
	charges, err := s.Charges(ctx, bolt.ChargeFilter{})
	if err != nil {
		t.Fatal(err)
	}
	f := fileContents{charges: map[fablab.ID]fablab.Charge{}, invoices: snap.invoices}
	snap.invoiced = map[fablab.ID]fablab.ID{}
	for _, c := range charges {
		f.charges[c.ID] = c
		inv, err := s.InvoiceOfCharge(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if inv != 0 {
			snap.invoiced[c.ID] = inv
		}
	}
	verifyInvoices(t, f, newAcked(), when)
	lines := 0
	for _, inv := range snap.invoices {
		for _, l := range inv.Lines {
			lines++
			if snap.invoiced[l.ChargeID] != inv.ID {
				t.Errorf("%s: invoice %s bills charge %s, which the ledger marks taken by invoice %s", when, inv.Number, l.ChargeID, snap.invoiced[l.ChargeID])
			}
		}
	}
	if lines != len(snap.invoiced) {
		t.Errorf("%s: %d charges marked invoiced, %d invoice lines", when, len(snap.invoiced), lines)
	}
	if snap.unbilled, err = s.UnbilledSessions(ctx); err != nil {
		t.Fatal(err)
	}
	if snap.sessions, err = s.SessionsStarted(ctx, dfStart.Add(-time.Hour), dfStart.AddDate(0, 1, 0), 1000); err != nil {
		t.Fatal(err)
	}
	return snap
}
