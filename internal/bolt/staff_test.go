package bolt_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

func TestSearchMembers(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	var zoes []fablab.ID
	for i, name := range []string{"Zoé Martin", "Paul Durand", "zoe Petit", "Anne Zoellner", "Marc Roux"} {
		m, err := s.CreateMember(ctx, fablab.Member{Email: fmt.Sprintf("member%d@example.org", i), Name: name, Group: "student"})
		if err != nil {
			t.Fatal(err)
		}
		if name != "Paul Durand" && name != "Marc Roux" && name != "Zoé Martin" {
			zoes = append(zoes, m.ID)
		}
	}
	var got []fablab.ID
	var after fablab.ID
	for pages := 0; ; pages++ {
		p, err := s.SearchMembers(ctx, "  ZOE ", after, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Items {
			got = append(got, m.ID)
		}
		if p.Next == 0 {
			break
		}
		if pages > 10 {
			t.Fatal("the pages never end")
		}
		after = p.Next
	}
	// "Zoé" does not contain "zoe": the search is by letters, not by sound.
	if len(got) != len(zoes) || got[0] != zoes[0] || got[1] != zoes[1] {
		t.Fatalf("search zoe one at a time: %v, want %v", got, zoes)
	}
	all, err := s.SearchMembers(ctx, "", 0, 100)
	if err != nil || len(all.Items) != 5 {
		t.Fatalf("blank search: %d members (%v), want all 5", len(all.Items), err)
	}
	byEmail, err := s.SearchMembers(ctx, all.Items[1].Email, 0, 100)
	if err != nil || len(byEmail.Items) != 1 || byEmail.Items[0].ID != all.Items[1].ID {
		t.Fatalf("search by email: %+v (%v)", byEmail.Items, err)
	}
}

func TestRevokeQualification(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	m := mustMember(t, s, "Revoked")
	tr := mustTraining(t, s, "Laser")
	other := mustTraining(t, s, "CNC")
	for _, id := range []fablab.ID{tr.ID, other.ID} {
		if _, err := s.GrantQualification(ctx, fablab.Qualification{MemberID: m.ID, TrainingID: id, GrantedBy: m.ID}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeQualification(ctx, m.ID, tr.ID); err != nil {
		t.Fatal(err)
	}
	qs, err := s.Qualifications(ctx, m.ID)
	if err != nil || len(qs) != 1 || qs[0].TrainingID != other.ID {
		t.Fatalf("after revoking the laser: %+v (%v), want the CNC alone", qs, err)
	}
	if err := s.RevokeQualification(ctx, m.ID, tr.ID); fablab.ErrorCode(err) != fablab.ENOTFOUND {
		t.Fatalf("revoke twice: %v, want not_found", err)
	}
}

func TestOccupyingBookings(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	m := mustMember(t, s, "Booker")
	a, b := mustMachine(t, s, "A"), mustMachine(t, s, "B")
	before := mustBook(t, s, a.ID, m.ID, span(-120, 30)) // runs into the range
	inside := mustBook(t, s, b.ID, m.ID, span(60, 120))
	cancelled := mustBook(t, s, a.ID, m.ID, span(60, 90))
	mustSetState(t, s, cancelled.ID, fablab.BookingCancelled)
	mustBook(t, s, a.ID, m.ID, span(600, 660))  // after the range
	mustBook(t, s, b.ID, m.ID, span(-200, -60)) // ended before it
	got, err := s.OccupyingBookings(ctx, at(0), at(300))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != before.ID || got[1].ID != inside.ID {
		t.Fatalf("occupying bookings of [0, 300): %+v, want %d and %d", got, before.ID, inside.ID)
	}
}

func TestAuditFilterAction(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.Audit(ctx,
		fablab.AuditEvent{At: at(0), Kind: fablab.AuditTap, Action: "denied", Reason: "in_use"},
		fablab.AuditEvent{At: at(1), Kind: fablab.AuditTap, Action: "granted"},
		fablab.AuditEvent{At: at(2), Kind: fablab.AuditSession, Action: "denied"},
	); err != nil {
		t.Fatal(err)
	}
	evs, err := s.AuditEvents(ctx, bolt.AuditFilter{From: at(-1), To: at(10), Kind: fablab.AuditTap, Action: "denied", Limit: 10})
	if err != nil || len(evs) != 1 || evs[0].Reason != "in_use" {
		t.Fatalf("refused taps: %+v (%v)", evs, err)
	}
	evs, err = s.AuditEvents(ctx, bolt.AuditFilter{From: at(-1), To: at(10), Action: "denied", Limit: 10})
	if err != nil || len(evs) != 2 || !evs[0].At.Equal(at(2).Truncate(time.Second)) {
		t.Fatalf("every denied event, newest first: %+v (%v)", evs, err)
	}
}

func TestMemberNames(t *testing.T) {
	s, _ := newStore(t)
	a, b := mustMember(t, s, "Ada"), mustMember(t, s, "Bo")
	got, err := s.MemberNames(context.Background(), []fablab.ID{a.ID, b.ID, a.ID, 999, 0})
	if err != nil || len(got) != 2 || got[a.ID] != "Ada" || got[b.ID] != "Bo" {
		t.Fatalf("names: %v (%v), want Ada and Bo alone", got, err)
	}
}
