package bolt_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

func TestMembersPagination(t *testing.T) {
	s, _ := newStore(t)
	var all []fablab.ID
	for _, name := range []string{"Ada", "Grace", "Hedy", "Katherine", "Margaret", "Radia", "Barbara"} {
		all = append(all, mustMember(t, s, name).ID)
	}
	tests := []struct {
		name     string
		after    fablab.ID
		limit    int
		want     []fablab.ID
		wantMore bool
	}{
		{name: "first page", after: 0, limit: 3, want: all[:3], wantMore: true},
		{name: "middle page", after: all[2], limit: 3, want: all[3:6], wantMore: true},
		{name: "last partial page", after: all[5], limit: 3, want: all[6:]},
		{name: "exact fit", after: 0, limit: 7, want: all},
		{name: "larger than list", after: 0, limit: 100, want: all},
		{name: "after the last", after: all[6], limit: 3, want: []fablab.ID{}},
		{name: "after an id in between", after: all[1], limit: 1, want: all[2:3], wantMore: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.Members(t.Context(), tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]fablab.ID, len(p.Items))
			for i, m := range p.Items {
				got[i] = m.ID
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
			if (p.Next != 0) != tt.wantMore {
				t.Errorf("Next = %s, want more=%v", p.Next, tt.wantMore)
			}
			if p.Next != 0 {
				// Next continues right after this page.
				rest, err := s.Members(t.Context(), p.Next, 1)
				if err != nil || len(rest.Items) != 1 || rest.Items[0].ID != tt.want[len(tt.want)-1]+1 {
					t.Errorf("page after Next=%s = %+v, %v", p.Next, rest.Items, err)
				}
			}
		})
	}

	t.Run("walk", func(t *testing.T) {
		for limit := 1; limit <= 8; limit++ {
			var got []fablab.ID
			after, pages := fablab.ID(0), 0
			for {
				p, err := s.Members(t.Context(), after, limit)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				for _, m := range p.Items {
					got = append(got, m.ID)
				}
				if p.Next == 0 {
					break
				}
				if pages > 10 {
					t.Fatalf("limit %d: pagination does not end", limit)
				}
				after = p.Next
			}
			if !slices.Equal(got, all) {
				t.Errorf("limit %d: walked %v, want %v", limit, got, all)
			}
		}
	})
}

func TestCreateMemberEmail(t *testing.T) {
	tests := []struct {
		name  string
		email string
		code  string
	}{
		{name: "same address", email: "ada@example.org", code: "email_taken"},
		{name: "upper case", email: "ADA@Example.ORG", code: "email_taken"},
		{name: "surrounding spaces", email: "  Ada@example.org ", code: "email_taken"},
		{name: "another address", email: "ada2@example.org"},
		{name: "invalid", email: "not an email", code: fablab.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			ada, err := s.CreateMember(t.Context(), fablab.Member{Email: "Ada@Example.org", Name: "Ada", Group: "student"})
			if err != nil {
				t.Fatal(err)
			}
			if ada.Email != "ada@example.org" {
				t.Errorf("stored email %q, want it normalised", ada.Email)
			}
			_, err = s.CreateMember(t.Context(), fablab.Member{Email: tt.email, Name: "Other", Group: "sme"})
			wantCode(t, err, tt.code)
			wantN := 1
			if tt.code == "" {
				wantN = 2
			}
			if n, _ := s.CountMembers(t.Context()); n != wantN {
				t.Errorf("%d members stored, want %d", n, wantN)
			}
			got, err := s.MemberByEmail(t.Context(), " ADA@EXAMPLE.ORG")
			if err != nil || got.ID != ada.ID {
				t.Errorf("MemberByEmail = %s, %v; want %s", got.ID, err, ada.ID)
			}
		})
	}
}

func TestUpdateMemberEmail(t *testing.T) {
	tests := []struct {
		name     string
		newEmail string
		code     string
		// wantOldFree: the old address can be used by a new member afterwards.
		wantOldFree bool
	}{
		{name: "new address", newEmail: "ada.lovelace@example.org", wantOldFree: true},
		{name: "case only", newEmail: "ADA@EXAMPLE.ORG"},
		{name: "address of another member", newEmail: "grace@example.org", code: "email_taken"},
		{name: "other member in another case", newEmail: "Grace@Example.org", code: "email_taken"},
		{name: "invalid", newEmail: "ada@", code: fablab.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			ctx := t.Context()
			ada, err := s.CreateMember(ctx, fablab.Member{Email: "ada@example.org", Name: "Ada", Group: "student"})
			if err != nil {
				t.Fatal(err)
			}
			grace, err := s.CreateMember(ctx, fablab.Member{Email: "grace@example.org", Name: "Grace", Group: "student"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.UpdateMember(ctx, ada.ID, func(m *fablab.Member) error { m.Email = tt.newEmail; return nil })
			wantCode(t, err, tt.code)

			wantAt := map[string]fablab.ID{"grace@example.org": grace.ID}
			if tt.code == "" {
				wantAt[fablab.NormalizeEmail(tt.newEmail)] = ada.ID
			} else {
				wantAt["ada@example.org"] = ada.ID
			}
			for email, id := range wantAt {
				got, err := s.MemberByEmail(ctx, email)
				if err != nil || got.ID != id {
					t.Errorf("MemberByEmail(%s) = %s, %v; want %s", email, got.ID, err, id)
				}
			}
			stored, _ := s.Member(ctx, ada.ID)
			if _, ok := wantAt[stored.Email]; !ok || wantAt[stored.Email] != ada.ID {
				t.Errorf("stored email %q does not match the index", stored.Email)
			}
			if tt.wantOldFree {
				_, err := s.MemberByEmail(ctx, "ada@example.org")
				wantCode(t, err, fablab.ENOTFOUND)
				if _, err := s.CreateMember(ctx, fablab.Member{Email: "ada@example.org", Name: "Ada II", Group: "student"}); err != nil {
					t.Errorf("reusing the released address: %v", err)
				}
			}
		})
	}
}

func TestUpdateMemberKeepsIdentity(t *testing.T) {
	s, clock := newStore(t)
	ada := mustMember(t, s, "Ada")
	clock.Advance(time.Hour)
	got, err := s.UpdateMember(t.Context(), ada.ID, func(m *fablab.Member) error {
		m.ID, m.CreatedAt, m.Name = 999, time.Time{}, "Ada Lovelace"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != ada.ID || !got.CreatedAt.Equal(ada.CreatedAt) || got.Name != "Ada Lovelace" {
		t.Errorf("updated member = %+v", got)
	}
	errStop := errors.New("stop")
	if _, err := s.UpdateMember(t.Context(), ada.ID, func(m *fablab.Member) error { m.Name = "X"; return errStop }); !errors.Is(err, errStop) {
		t.Errorf("fn error = %v, want it returned", err)
	}
	if m, _ := s.Member(t.Context(), ada.ID); m.Name != "Ada Lovelace" {
		t.Errorf("failed update stored name %q", m.Name)
	}
}

func TestPasswordHashStored(t *testing.T) {
	s, _ := newStore(t)
	m, err := s.CreateMember(t.Context(), fablab.Member{Email: "a@example.org", Name: "A", Group: "staff", Role: fablab.RoleAdmin, PasswordHash: "$argon2id$x"})
	if err != nil {
		t.Fatal(err)
	}
	for name, get := range map[string]func() (fablab.Member, error){
		"Member":        func() (fablab.Member, error) { return s.Member(t.Context(), m.ID) },
		"MemberByEmail": func() (fablab.Member, error) { return s.MemberByEmail(t.Context(), "a@example.org") },
	} {
		got, err := get()
		if err != nil || got.PasswordHash != "$argon2id$x" || got.Role != fablab.RoleAdmin {
			t.Errorf("%s = %+v (hash %q), %v", name, got, got.PasswordHash, err)
		}
	}
}

func TestMemberOrganisation(t *testing.T) {
	tests := []struct {
		name      string
		member    func(org fablab.ID) fablab.Member
		code      string
		wantPayer string
	}{
		{
			name:      "existing organisation",
			member:    func(org fablab.ID) fablab.Member { return fablab.Member{OrganisationID: org} },
			wantPayer: fablab.PayerOrganisation,
		},
		{
			name: "existing organisation, own group, pays self",
			member: func(org fablab.ID) fablab.Member {
				return fablab.Member{OrganisationID: org, Group: "student", Payer: fablab.PayerSelf}
			},
			wantPayer: fablab.PayerSelf,
		},
		{
			name:   "missing organisation",
			member: func(org fablab.ID) fablab.Member { return fablab.Member{OrganisationID: org + 100} },
			code:   fablab.ENOTFOUND,
		},
		{
			name:   "no organisation and no group",
			member: func(fablab.ID) fablab.Member { return fablab.Member{} },
			code:   fablab.EINVALID,
		},
		{
			name:   "unknown group",
			member: func(fablab.ID) fablab.Member { return fablab.Member{Group: "vip"} },
			code:   fablab.EINVALID,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			org, err := s.CreateOrganisation(t.Context(), fablab.Organisation{Name: "Acme SAS", Group: "sme"})
			if err != nil {
				t.Fatal(err)
			}
			m := tt.member(org.ID)
			m.Email, m.Name = "maker@acme.example", "Maker"
			got, err := s.CreateMember(t.Context(), m)
			wantCode(t, err, tt.code)
			if err != nil {
				if n, _ := s.CountMembers(t.Context()); n != 0 {
					t.Errorf("refused member was stored")
				}
				return
			}
			if got.Payer != tt.wantPayer {
				t.Errorf("payer = %q, want %q", got.Payer, tt.wantPayer)
			}
			// The organisation cannot be swapped for a missing one later either.
			_, err = s.UpdateMember(t.Context(), got.ID, func(m *fablab.Member) error { m.OrganisationID = 77; return nil })
			wantCode(t, err, fablab.ENOTFOUND)
		})
	}
}

func TestOrganisationsAndTrainings(t *testing.T) {
	s, clock := newStore(t)
	ctx := t.Context()
	_, err := s.CreateOrganisation(ctx, fablab.Organisation{Name: "Bad", Group: "nope"})
	wantCode(t, err, fablab.EINVALID)
	var orgs []fablab.ID
	for _, name := range []string{"Acme", "Lycée Monge", "Asso Vélo"} {
		o, err := s.CreateOrganisation(ctx, fablab.Organisation{Name: name, Group: "association"})
		if err != nil {
			t.Fatal(err)
		}
		if !o.CreatedAt.Equal(clock.Now()) {
			t.Errorf("organisation created at %v, want the clock's %v", o.CreatedAt, clock.Now())
		}
		orgs = append(orgs, o.ID)
	}
	p, err := s.Organisations(ctx, orgs[0], 10)
	if err != nil || len(p.Items) != 2 || p.Items[0].ID != orgs[1] || p.Next != 0 {
		t.Errorf("Organisations after first = %+v, %v", p, err)
	}
	if o, err := s.Organisation(ctx, orgs[1]); err != nil || o.Name != "Lycée Monge" {
		t.Errorf("Organisation = %+v, %v", o, err)
	}

	_, err = s.CreateTraining(ctx, fablab.Training{Name: " "})
	wantCode(t, err, fablab.EINVALID)
	laser := mustTraining(t, s, "Laser safety")
	cnc := mustTraining(t, s, "CNC basics")
	tp, err := s.Trainings(ctx, 0, 1)
	if err != nil || len(tp.Items) != 1 || tp.Items[0].ID != laser.ID || tp.Next == 0 {
		t.Errorf("Trainings first page = %+v, %v", tp, err)
	}
	if tr, err := s.Training(ctx, cnc.ID); err != nil || tr.Name != "CNC basics" {
		t.Errorf("Training = %+v, %v", tr, err)
	}
}

func TestQualifications(t *testing.T) {
	s, clock := newStore(t)
	ctx := t.Context()
	ada, grace := mustMember(t, s, "Ada"), mustMember(t, s, "Grace")
	laser, cnc := mustTraining(t, s, "Laser safety"), mustTraining(t, s, "CNC basics")
	year := clock.Now().AddDate(1, 0, 0)
	past := clock.Now().Add(-time.Minute)

	tests := []struct {
		name string
		q    fablab.Qualification
		code string
	}{
		{name: "ada laser", q: fablab.Qualification{MemberID: ada.ID, TrainingID: laser.ID, GrantedBy: grace.ID, ExpiresAt: &year}},
		{name: "ada cnc, no expiry", q: fablab.Qualification{MemberID: ada.ID, TrainingID: cnc.ID, GrantedBy: grace.ID}},
		{name: "grace laser", q: fablab.Qualification{MemberID: grace.ID, TrainingID: laser.ID, GrantedBy: ada.ID}},
		{name: "ada laser renewed", q: fablab.Qualification{MemberID: ada.ID, TrainingID: laser.ID, GrantedBy: grace.ID}},
		{name: "missing member", q: fablab.Qualification{MemberID: 99, TrainingID: laser.ID, GrantedBy: grace.ID}, code: fablab.ENOTFOUND},
		{name: "missing training", q: fablab.Qualification{MemberID: ada.ID, TrainingID: 99, GrantedBy: grace.ID}, code: fablab.ENOTFOUND},
		{name: "already expired", q: fablab.Qualification{MemberID: grace.ID, TrainingID: cnc.ID, GrantedBy: ada.ID, ExpiresAt: &past}, code: fablab.EINVALID},
		{name: "granted by nobody", q: fablab.Qualification{MemberID: grace.ID, TrainingID: cnc.ID}, code: fablab.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Advance(time.Minute)
			q, err := s.GrantQualification(ctx, tt.q)
			wantCode(t, err, tt.code)
			if err == nil && !q.GrantedAt.Equal(clock.Now()) {
				t.Errorf("granted at %v, want the clock's %v", q.GrantedAt, clock.Now())
			}
		})
	}

	want := map[fablab.ID][]fablab.ID{ada.ID: {laser.ID, cnc.ID}, grace.ID: {laser.ID}}
	for member, trainings := range want {
		qs, err := s.Qualifications(ctx, member)
		if err != nil {
			t.Fatal(err)
		}
		var got []fablab.ID
		for _, q := range qs {
			if q.MemberID != member {
				t.Errorf("member %s got a qualification of member %s", member, q.MemberID)
			}
			got = append(got, q.TrainingID)
			if member == ada.ID && q.TrainingID == laser.ID && q.ExpiresAt != nil {
				t.Errorf("renewed qualification kept the old expiry %v", q.ExpiresAt)
			}
		}
		if !slices.Equal(got, trainings) {
			t.Errorf("member %s trainings = %v, want %v", member, got, trainings)
		}
	}
	none := mustMember(t, s, "Hedy")
	if qs, err := s.Qualifications(ctx, none.ID); err != nil || qs == nil || len(qs) != 0 {
		t.Errorf("Qualifications of an untrained member = %#v, %v; want empty, not nil", qs, err)
	}
}

func TestAddBadge(t *testing.T) {
	tests := []struct {
		name       string
		second     func(ada, grace fablab.ID) fablab.Badge
		code       string
		wantOwner  string // name of the badge's owner afterwards
		wantBadges map[string]int
	}{
		{
			name: "same member again is idempotent",
			second: func(ada, _ fablab.ID) fablab.Badge {
				return fablab.Badge{Hash: "aa11", MemberID: ada, Label: "new label"}
			},
			wantOwner:  "Ada",
			wantBadges: map[string]int{"Ada": 1, "Grace": 0},
		},
		{
			name:       "another member is refused",
			second:     func(_, grace fablab.ID) fablab.Badge { return fablab.Badge{Hash: "aa11", MemberID: grace} },
			code:       "badge_taken",
			wantOwner:  "Ada",
			wantBadges: map[string]int{"Ada": 1, "Grace": 0},
		},
		{
			name:       "another badge for the same member",
			second:     func(ada, _ fablab.ID) fablab.Badge { return fablab.Badge{Hash: "bb22", MemberID: ada} },
			wantOwner:  "Ada",
			wantBadges: map[string]int{"Ada": 2, "Grace": 0},
		},
		{
			name:       "missing member",
			second:     func(_, _ fablab.ID) fablab.Badge { return fablab.Badge{Hash: "cc33", MemberID: 99} },
			code:       fablab.ENOTFOUND,
			wantOwner:  "Ada",
			wantBadges: map[string]int{"Ada": 1, "Grace": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clock := newStore(t)
			ctx := t.Context()
			members := map[string]fablab.Member{"Ada": mustMember(t, s, "Ada"), "Grace": mustMember(t, s, "Grace")}
			first, err := s.AddBadge(ctx, fablab.Badge{Hash: "aa11", MemberID: members["Ada"].ID, Label: "card"})
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Hour)
			b, err := s.AddBadge(ctx, tt.second(members["Ada"].ID, members["Grace"].ID))
			wantCode(t, err, tt.code)
			if err == nil && b.Hash == first.Hash && (!b.CreatedAt.Equal(first.CreatedAt) || b.Label != first.Label) {
				t.Errorf("idempotent AddBadge returned %+v, want the stored %+v", b, first)
			}
			owner, err := s.BadgeOwner(ctx, "aa11")
			if err != nil || owner.Name != tt.wantOwner {
				t.Errorf("BadgeOwner = %q, %v; want %q", owner.Name, err, tt.wantOwner)
			}
			for name, n := range tt.wantBadges {
				bs, err := s.Badges(ctx, members[name].ID)
				if err != nil || len(bs) != n {
					t.Errorf("Badges(%s) = %v, %v; want %d", name, bs, err, n)
				}
			}
			_, err = s.BadgeOwner(ctx, "ffff")
			wantCode(t, err, fablab.ENOTFOUND)
		})
	}
}

func TestNotFound(t *testing.T) {
	s, _ := newStore(t)
	ada := mustMember(t, s, "Ada")
	laser := mustMachine(t, s, "Laser")
	const missing = fablab.ID(4242)
	tests := []struct {
		name string
		call func() error
	}{
		{"Member", func() error { _, err := s.Member(t.Context(), missing); return err }},
		{"MemberByEmail", func() error { _, err := s.MemberByEmail(t.Context(), "nobody@example.org"); return err }},
		{"UpdateMember", func() error {
			_, err := s.UpdateMember(t.Context(), missing, func(*fablab.Member) error { return nil })
			return err
		}},
		{"Organisation", func() error { _, err := s.Organisation(t.Context(), missing); return err }},
		{"Training", func() error { _, err := s.Training(t.Context(), missing); return err }},
		{"Qualifications", func() error { _, err := s.Qualifications(t.Context(), missing); return err }},
		{"Machine", func() error { _, err := s.Machine(t.Context(), missing); return err }},
		{"UpdateMachine", func() error {
			_, err := s.UpdateMachine(t.Context(), missing, func(*fablab.Machine) error { return nil })
			return err
		}},
		{"Booking", func() error { _, err := s.Booking(t.Context(), missing); return err }},
		{"SetBookingState", func() error {
			_, err := s.SetBookingState(t.Context(), missing, fablab.BookingCancelled, ada.ID, allow)
			return err
		}},
		{"CreateBooking machine", func() error { _, err := book(t, s, missing, ada.ID, span(0, 60)); return err }},
		{"CreateBooking member", func() error { _, err := book(t, s, laser.ID, missing, span(0, 60)); return err }},
		{"BadgeOwner", func() error { _, err := s.BadgeOwner(t.Context(), "00ff"); return err }},
		{"AddBadge", func() error {
			_, err := s.AddBadge(t.Context(), fablab.Badge{Hash: "00ff", MemberID: missing})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.call(), fablab.ENOTFOUND)
		})
	}
	if bs, err := s.Bookings(t.Context(), bolt.BookingFilter{MachineID: laser.ID, From: at(-600), To: at(600)}); err != nil || len(bs) != 0 {
		t.Errorf("failed CreateBooking left bookings %v, %v", bs, err)
	}
}
