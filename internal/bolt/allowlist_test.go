package bolt_test

import (
	"bytes"
	"testing"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// TestAllowlistFacts: one read gives the devices with their machines and
// every badge holder once, with all their badges and qualifications.
func TestAllowlistFacts(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	tr := mustTraining(t, s, "Laser")
	m := mustMachine(t, s, "Laser", tr.ID)
	ada, bob, sam := mustMember(t, s, "Ada"), mustMember(t, s, "Bob"), mustMember(t, s, "Sam")
	if _, err := s.GrantQualification(ctx, fablab.Qualification{MemberID: ada.ID, TrainingID: tr.ID, GrantedBy: sam.ID}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []fablab.Badge{{Hash: "a1", MemberID: ada.ID}, {Hash: "c1", MemberID: sam.ID}, {Hash: "a2", MemberID: ada.ID}} {
		if _, err := s.AddBadge(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateDevice(ctx, fablab.Device{ID: "laser-1", MachineID: m.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDevice(ctx, fablab.Device{ID: "spare"}); err != nil {
		t.Fatal(err)
	}
	f, err := s.AllowlistFacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Devices) != 2 || f.Devices[0].ID != "laser-1" || f.Devices[0].MachineID != m.ID || len(f.Machines) != 1 || f.Machines[m.ID].Name != "Laser" {
		t.Errorf("devices %+v, machines %+v", f.Devices, f.Machines)
	}
	if len(f.Holders) != 2 {
		t.Fatalf("holders %+v, want Ada and Sam (Bob %s holds no badge)", f.Holders, bob.ID)
	}
	if h := f.Holders[0]; h.Member.ID != ada.ID || len(h.Badges) != 2 || len(h.Quals) != 1 || h.Quals[0].TrainingID != tr.ID {
		t.Errorf("Ada: %+v", h)
	}
	if h := f.Holders[1]; h.Member.ID != sam.ID || len(h.Badges) != 1 || h.Badges[0] != "c1" || len(h.Quals) != 0 {
		t.Errorf("Sam: %+v", h)
	}
	if f.Key.ID != 1 || len(f.Key.Root) != 32 {
		t.Errorf("first allowlist key: id %d, %d bytes", f.Key.ID, len(f.Key.Root))
	}
}

// TestAllowlistKey: the key is made once and kept; a rotation gives the
// next id and a new root, kept across a reopen.
func TestAllowlistKey(t *testing.T) {
	path := t.TempDir() + "/fabgate.db"
	s, done := openFile(t, path, bolt.Options{})
	first, err := s.AllowlistKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.AllowlistKey(t.Context())
	if err != nil || again.ID != first.ID || !bytes.Equal(again.Root, first.Root) {
		t.Fatalf("key read again: %+v, %v; want %+v", again, err, first)
	}
	rot, err := s.RotateAllowlistKey(t.Context())
	if err != nil || rot.ID != first.ID+1 || bytes.Equal(rot.Root, first.Root) {
		t.Fatalf("rotated: %+v, %v", rot, err)
	}
	done()
	s, _ = openFile(t, path, bolt.Options{})
	if k, err := s.AllowlistKey(t.Context()); err != nil || k.ID != rot.ID || !bytes.Equal(k.Root, rot.Root) {
		t.Errorf("after reopen: %+v, %v; want %+v", k, err, rot)
	}
}

// TestImportMembers: all or nothing; members as CreateMember makes them.
func TestImportMembers(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	tr := mustTraining(t, s, "Laser")
	ok := []bolt.MemberImport{
		{Member: fablab.Member{Email: "i1@example.org", Name: "I1", Group: "student"}, Badges: []string{"h1"}, Trainings: []fablab.ID{tr.ID}, GrantedBy: 1},
		{Member: fablab.Member{Email: "i2@example.org", Name: "I2", Group: "student"}, Badges: []string{"h2", "h3"}},
	}
	ms, err := s.ImportMembers(ctx, ok)
	if err != nil || len(ms) != 2 || ms[0].Role != fablab.RoleMaker {
		t.Fatalf("import: %+v, %v", ms, err)
	}
	if owner, err := s.BadgeOwner(ctx, "h3"); err != nil || owner.ID != ms[1].ID {
		t.Errorf("owner of h3: %+v, %v", owner, err)
	}
	if qs, err := s.Qualifications(ctx, ms[0].ID); err != nil || len(qs) != 1 {
		t.Errorf("qualifications: %+v, %v", qs, err)
	}
	bad := []bolt.MemberImport{
		{Member: fablab.Member{Email: "i3@example.org", Name: "I3", Group: "student"}},
		{Member: fablab.Member{Email: "i4@example.org", Name: "I4", Group: "student"}, Badges: []string{"h1"}},
	}
	if _, err := s.ImportMembers(ctx, bad); fablab.ErrorCode(err) != "badge_taken" {
		t.Errorf("a taken badge: %v", err)
	}
	if _, err := s.MemberByEmail(ctx, "i3@example.org"); fablab.ErrorCode(err) != fablab.ENOTFOUND {
		t.Errorf("a failed import stored its first member: %v", err)
	}
}
