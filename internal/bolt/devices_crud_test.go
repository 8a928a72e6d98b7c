package bolt_test

import (
	"testing"

	"github.com/fabgate/fabgate/internal/fablab"
)

func TestDeleteDevice(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	m := mustMachine(t, s, "Laser")
	if _, err := s.CreateDevice(ctx, fablab.Device{ID: "laser-1", MachineID: m.ID, SecretHash: "h"}); err != nil {
		t.Fatal(err)
	}
	_, last, err := s.ReserveSeq(ctx, "laser-1")
	if err != nil {
		t.Fatal(err)
	}

	// A machine with an open session keeps its device.
	sess, err := openSession(t, s, m.ID, mustMember(t, s, "Ada").ID, "laser-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteDevice(ctx, "laser-1"); fablab.ErrorCode(err) != fablab.ECONFLICT {
		t.Fatalf("delete with an open session: %v, want conflict", err)
	}
	if _, err := s.EndSessionBy(ctx, sess.ID, at(30), fablab.EndStaff, nil); err != nil {
		t.Fatal(err)
	}

	d, err := s.DeleteDevice(ctx, "laser-1")
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "laser-1" || d.MachineID != m.ID {
		t.Errorf("deleted %+v, want laser-1 as it was (on the laser)", d)
	}
	if _, err := s.Device(ctx, "laser-1"); fablab.ErrorCode(err) != fablab.ENOTFOUND {
		t.Errorf("device after delete: %v, want not found", err)
	}
	if got, err := s.Machine(ctx, m.ID); err != nil || got.DeviceID != "" {
		t.Errorf("machine after delete: device %q (%v), want none", got.DeviceID, err)
	}
	if _, err := s.MachineOfDevice(ctx, "laser-1"); fablab.ErrorCode(err) != fablab.ENOTFOUND {
		t.Errorf("MachineOfDevice after delete: %v, want not found", err)
	}
	if _, err := s.DeleteDevice(ctx, "laser-1"); fablab.ErrorCode(err) != fablab.ENOTFOUND {
		t.Errorf("second delete: %v, want not found", err)
	}

	// Made again under the same id: its seq numbers go on.
	if _, err := s.CreateDevice(ctx, fablab.Device{ID: "laser-1", SecretHash: "h2"}); err != nil {
		t.Fatal(err)
	}
	if first, _, err := s.ReserveSeq(ctx, "laser-1"); err != nil || first <= last {
		t.Errorf("seq after re-creation starts at %d (%v), want above %d", first, err, last)
	}
}

func TestDeviceDisabledIsStored(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	if _, err := s.CreateDevice(ctx, fablab.Device{ID: "saw-1", SecretHash: "h"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateDevice(ctx, "saw-1", func(d *fablab.Device) error { d.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	d, err := s.Device(ctx, "saw-1")
	if err != nil || !d.Disabled || d.SecretHash != "h" {
		t.Errorf("device %+v (%v), want disabled with its secret hash kept", d, err)
	}
}
