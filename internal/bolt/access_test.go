package bolt_test

import (
	"slices"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

func openSession(t *testing.T, s *bolt.Store, machine, member fablab.ID, dev string, tap *bolt.TapRef) (fablab.Session, error) {
	t.Helper()
	return s.OpenSession(t.Context(), fablab.Session{MachineID: machine, MemberID: member, DeviceID: dev, Started: at(0), Until: at(60), Billable: true}, tap,
		[]fablab.AuditEvent{{At: at(0), Kind: fablab.AuditTap, Action: "granted"}})
}

func TestSessionsLifecycle(t *testing.T) {
	s, _ := newStore(t)
	m := mustMachine(t, s, "Laser")
	ada := mustMember(t, s, "Ada")
	if _, err := s.CreateDevice(t.Context(), fablab.Device{ID: "laser-1", MachineID: m.ID, SecretHash: "h"}); err != nil {
		t.Fatal(err)
	}
	tap := &bolt.TapRef{Device: "laser-1", MsgID: "m1", At: at(0)}
	sess, err := openSession(t, s, m.ID, ada.ID, "laser-1", tap)
	if err != nil {
		t.Fatal(err)
	}
	// The same tap again, or a second session on the machine, is refused.
	_, err = openSession(t, s, m.ID, ada.ID, "laser-1", tap)
	wantCode(t, err, fablab.EDUPLICATE)
	_, err = openSession(t, s, m.ID, ada.ID, "laser-1", &bolt.TapRef{Device: "laser-1", MsgID: "m2", At: at(1)})
	wantCode(t, err, fablab.ECONFLICT)
	if seen, _ := s.TapSeen(t.Context(), bolt.TapRef{Device: "laser-1", MsgID: "m2"}); seen {
		t.Fatal("a refused tap was recorded as handled")
	}
	// The audit line carries the session's ids.
	evs, err := s.AuditEvents(t.Context(), bolt.AuditFilter{From: at(-1), To: at(10), MachineID: m.ID, Limit: 10})
	if err != nil || len(evs) != 1 || evs[0].SessionID != sess.ID || evs[0].MemberID != ada.ID || evs[0].DeviceID != "laser-1" || evs[0].ID == 0 {
		t.Fatalf("audit: %+v %v", evs, err)
	}
	// The device cannot be moved while the session runs.
	other := mustMachine(t, s, "Printer")
	_, err = s.UpdateDevice(t.Context(), "laser-1", func(d *fablab.Device) error { d.MachineID = other.ID; return nil })
	wantCode(t, err, fablab.ECONFLICT)
	_, err = s.UpdateMachine(t.Context(), m.ID, func(mm *fablab.Machine) error { mm.DeviceID = ""; return nil })
	wantCode(t, err, fablab.ECONFLICT)

	closed, err := s.CloseSession(t.Context(), sess.ID, at(30), fablab.EndTapOut, ada.ID, nil, nil)
	if err != nil || closed.Open() || closed.EndReason != fablab.EndTapOut || !closed.Ended.Equal(at(30)) {
		t.Fatalf("close: %+v %v", closed, err)
	}
	_, err = s.CloseSession(t.Context(), sess.ID, at(31), fablab.EndStaff, 0, nil, nil)
	wantCode(t, err, fablab.ECONFLICT)
	if open, _ := s.OpenSessions(t.Context()); len(open) != 0 {
		t.Fatalf("open sessions after the close: %+v", open)
	}
	unconf, err := openSession(t, s, m.ID, ada.ID, "laser-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := s.CloseSession(t.Context(), unconf.ID, at(1), fablab.EndRelayUnconfirmed, 0, nil, nil); c.Billable {
		t.Fatal("an unconfirmed session is billable")
	}
	// Now the device may move.
	if _, err := s.UpdateDevice(t.Context(), "laser-1", func(d *fablab.Device) error { d.MachineID = other.ID; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		got  func() ([]fablab.Session, error)
		want int
	}{
		{"by machine", func() ([]fablab.Session, error) { return s.SessionsOfMachine(t.Context(), m.ID, at(-1), at(10)) }, 2},
		{"by member", func() ([]fablab.Session, error) { return s.SessionsOfMember(t.Context(), ada.ID, at(-1), at(10)) }, 2},
		{"by start", func() ([]fablab.Session, error) { return s.SessionsStarted(t.Context(), at(-1), at(10), 1) }, 1},
		{"other machine", func() ([]fablab.Session, error) { return s.SessionsOfMachine(t.Context(), other.ID, at(-1), at(10)) }, 0},
	} {
		if ss, err := tt.got(); err != nil || len(ss) != tt.want {
			t.Errorf("%s: %d sessions (%v), want %d", tt.name, len(ss), err, tt.want)
		}
	}
}

func TestPruneTapsKeepsRecentOnes(t *testing.T) {
	s, clock := newStore(t)
	for i, when := range []time.Time{clock.Now().Add(-40 * 24 * time.Hour), clock.Now().Add(-31 * 24 * time.Hour), clock.Now().Add(-time.Hour)} {
		if err := s.RecordTap(t.Context(), bolt.TapRef{Device: "d", MsgID: string(rune('a' + i)), At: when}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneTaps(t.Context(), 100)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d (%v), want 2", n, err)
	}
	if seen, _ := s.TapSeen(t.Context(), bolt.TapRef{Device: "d", MsgID: "c"}); !seen {
		t.Fatal("a recent tap was forgotten")
	}
	if seen, _ := s.TapSeen(t.Context(), bolt.TapRef{Device: "d", MsgID: "a"}); seen {
		t.Fatal("an old tap is still remembered")
	}
}

func TestUnknownTapsLast24HoursOncePerBadge(t *testing.T) {
	s, clock := newStore(t)
	now := clock.Now()
	for _, u := range []fablab.UnknownTap{
		{Hash: "old", At: now.Add(-25 * time.Hour), DeviceID: "a"},
		{Hash: "h1", At: now.Add(-2 * time.Hour), DeviceID: "a"},
		{Hash: "h1", At: now.Add(-time.Hour), DeviceID: "b"},
		{Hash: "h2", At: now.Add(-30 * time.Minute), DeviceID: "c"},
	} {
		if err := s.RememberUnknownTap(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.UnknownTaps(t.Context())
	if err != nil || len(got) != 2 || got[0].Hash != "h2" || got[1].Hash != "h1" || got[1].DeviceID != "b" {
		t.Fatalf("unknown taps: %+v %v", got, err)
	}
}

func TestReserveSeqNeverGoesBack(t *testing.T) {
	path := tempDBPath(t)
	s, closeFn := openFile(t, path, bolt.Options{})
	f1, l1, err := s.ReserveSeq(t.Context(), "d")
	if err != nil || f1 != 1 || l1 < f1 {
		t.Fatalf("first block [%d, %d] %v", f1, l1, err)
	}
	closeFn()
	s, _ = openFile(t, path, bolt.Options{})
	f2, _, err := s.ReserveSeq(t.Context(), "d")
	if err != nil || f2 <= l1 {
		t.Fatalf("block after a restart starts at %d, within the first one (to %d)", f2, l1)
	}
}

// Open sessions are not in the time indexes (they join them when they end);
// every session query adds them, so a query sees each session once, in
// start order, open or ended. Checked against a model of all sessions.
func TestSessionQueriesSeeOpenAndEndedSessions(t *testing.T) {
	s, _ := newStore(t)
	machines := []fablab.Machine{mustMachine(t, s, "Laser"), mustMachine(t, s, "Mill"), mustMachine(t, s, "Lathe"), mustMachine(t, s, "Printer")}
	members := []fablab.Member{mustMember(t, s, "Ada"), mustMember(t, s, "Grace")}
	var all []fablab.Session
	// Ended sessions, and two still open that started before some ended
	// ones; starts collide across machines.
	for i, start := range []int{0, 5, 5, 12, 20, 20, 31, 40, 45} {
		m, mem := machines[i%4], members[(i/2)%2]
		sess, err := s.OpenSession(t.Context(), fablab.Session{MachineID: m.ID, MemberID: mem.ID, DeviceID: "d", Started: at(start), Until: at(start + 60), Billable: true}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i != 5 && i != 7 { // open: the Mill's since 20, the Printer's since 40
			if sess, err = s.CloseSession(t.Context(), sess.ID, at(start+3), fablab.EndTapOut, 0, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, sess)
	}
	model := func(keep func(fablab.Session) bool, limit int) []fablab.ID {
		var out []fablab.ID
		for _, ss := range all { // all is in start order already, ids ascending
			if keep(ss) && len(out) < limit {
				out = append(out, ss.ID)
			}
		}
		return out
	}
	idsOf := func(ss []fablab.Session) []fablab.ID {
		var out []fablab.ID
		for _, x := range ss {
			out = append(out, x.ID)
		}
		return out
	}
	for from := -1; from <= 46; from += 3 {
		for _, to := range []int{from + 1, from + 10, from + 50} {
			in := func(x fablab.Session) bool { return !x.Started.Before(at(from)) && x.Started.Before(at(to)) }
			for _, limit := range []int{1, 2, 100} {
				got, err := s.SessionsStarted(t.Context(), at(from), at(to), limit)
				if want := model(in, limit); err != nil || !slices.Equal(idsOf(got), want) {
					t.Fatalf("SessionsStarted [%d,%d) limit %d = %v (%v), want %v", from, to, limit, idsOf(got), err, want)
				}
			}
			for _, m := range machines {
				got, err := s.SessionsOfMachine(t.Context(), m.ID, at(from), at(to))
				if want := model(func(x fablab.Session) bool { return x.MachineID == m.ID && in(x) }, 100); err != nil || !slices.Equal(idsOf(got), want) {
					t.Fatalf("SessionsOfMachine %s [%d,%d) = %v (%v), want %v", m.ID, from, to, idsOf(got), err, want)
				}
			}
			for _, mem := range members {
				got, err := s.SessionsOfMember(t.Context(), mem.ID, at(from), at(to))
				if want := model(func(x fablab.Session) bool { return x.MemberID == mem.ID && in(x) }, 100); err != nil || !slices.Equal(idsOf(got), want) {
					t.Fatalf("SessionsOfMember %s [%d,%d) = %v (%v), want %v", mem.ID, from, to, idsOf(got), err, want)
				}
			}
		}
	}
}

// A session a device ran offline is stored ended, in the indexes, once per
// tap; one that has not ended, or ends before it starts, is refused.
func TestRecordSession(t *testing.T) {
	s, _ := newStore(t)
	m := mustMachine(t, s, "Laser")
	ada := mustMember(t, s, "Ada")
	end := at(45)
	sess := fablab.Session{MachineID: m.ID, MemberID: ada.ID, DeviceID: "laser-1", Started: at(0), Until: at(60), Ended: &end, EndReason: fablab.EndTapOut, Offline: true, Confirmed: true, Billable: true}
	tap := &bolt.TapRef{Device: "laser-1", MsgID: "off-1", At: at(0)}
	got, err := s.RecordSession(t.Context(), sess, tap, []fablab.AuditEvent{{At: at(0), Kind: fablab.AuditTap, Action: "replayed"}})
	if err != nil || got.ID == 0 {
		t.Fatalf("record: %+v %v", got, err)
	}
	_, err = s.RecordSession(t.Context(), sess, tap, nil)
	wantCode(t, err, fablab.EDUPLICATE)
	if ss, _ := s.SessionsOfMember(t.Context(), ada.ID, at(-1), at(10)); len(ss) != 1 || ss[0].ID != got.ID || ss[0].Open() {
		t.Fatalf("by member: %+v", ss)
	}
	if open, _ := s.OpenSessions(t.Context()); len(open) != 0 {
		t.Fatalf("a recorded session is open: %+v", open)
	}
	running := sess
	running.Ended = nil
	_, err = s.RecordSession(t.Context(), running, nil, nil)
	wantCode(t, err, fablab.EINVALID)
	early := at(-5)
	backwards := sess
	backwards.Ended = &early
	_, err = s.RecordSession(t.Context(), backwards, nil, nil)
	wantCode(t, err, fablab.EINVALID)
}
