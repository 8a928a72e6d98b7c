package bolt_test

import (
	"encoding/binary"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// TestStoreRefusesEndReasonsOutsideTheEnum checks that no way of ending a
// session stores an end reason outside fablab.EndReasons (a device's code,
// a deny code), and that a refused end writes nothing.
func TestStoreRefusesEndReasonsOutsideTheEnum(t *testing.T) {
	s, _ := newStore(t)
	m := mustMachine(t, s, "Laser")
	ada := mustMember(t, s, "Ada")
	sess, err := openSession(t, s, m.ID, ada.ID, "laser-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []fablab.EndReason{"", "replaced ", "device_restart", "in_use", "no_session"} {
		_, err := s.CloseSession(t.Context(), sess.ID, at(5), bad, 0, nil, nil)
		wantCode(t, err, fablab.EINVALID)
		_, err = s.EndSessionBy(t.Context(), sess.ID, at(5), bad, nil)
		wantCode(t, err, fablab.EINVALID)
		end := at(10)
		rec := fablab.Session{MachineID: m.ID, MemberID: ada.ID, DeviceID: "laser-1", Started: at(0), Until: at(60), Ended: &end, EndReason: bad, Offline: true}
		_, err = s.RecordSession(t.Context(), rec, &bolt.TapRef{Device: "laser-1", MsgID: "off-" + string(bad), At: at(0)}, nil)
		wantCode(t, err, fablab.EINVALID)
	}
	if got, err := s.Session(t.Context(), sess.ID); err != nil || !got.Open() {
		t.Fatalf("after refused ends: %+v %v", got, err)
	}
	if ss, _ := s.SessionsOfMember(t.Context(), ada.ID, at(-1), at(100)); len(ss) != 1 {
		t.Fatalf("a refused recorded session was stored: %+v", ss)
	}
	for _, r := range fablab.EndReasons() {
		_, err := s.EndSessionBy(t.Context(), sess.ID, at(59), r, nil)
		if err != nil && fablab.ErrorCode(err) != fablab.ECONFLICT {
			t.Errorf("EndSessionBy(%q): %v", r, err)
		}
	}
	if got, _ := s.Session(t.Context(), sess.ID); got.Open() || got.EndReason != fablab.EndReasons()[0] {
		t.Fatalf("ended with a valid reason: %+v", got)
	}
}

// A required training that cannot be read (damaged storage) fails the
// access decision's read; it used to be taken for a training without a
// name, as if it did not exist.
func TestAccessFactsDamagedTrainingIsAnError(t *testing.T) {
	path := tempDBPath(t)
	s, closeFn := openFile(t, path, bolt.Options{})
	ctx := t.Context()
	tr := mustTraining(t, s, "Laser safety")
	m := mustMachine(t, s, "Laser", tr.ID)
	if _, err := s.CreateDevice(ctx, fablab.Device{ID: "laser-1", MachineID: m.ID, SecretHash: "h"}); err != nil {
		t.Fatal(err)
	}
	if f, err := s.AccessFacts(ctx, "laser-1", "nobody", at(0), time.Hour); err != nil || f.Trainings[tr.ID] != "Laser safety" {
		t.Fatalf("facts: %+v %v", f, err)
	}
	closeFn()

	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	key := binary.BigEndian.AppendUint64(nil, uint64(tr.ID))
	if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("trainings")).Put(key, []byte("{not json")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, _ = openFile(t, path, bolt.Options{})
	_, err = s.AccessFacts(ctx, "laser-1", "nobody", at(0), time.Hour)
	wantCode(t, err, fablab.EINTERNAL)
}
