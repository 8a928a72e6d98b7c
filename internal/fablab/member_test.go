package fablab

import (
	"strings"
	"testing"
	"time"
)

func validMember() Member {
	return Member{Email: "ada@example.org", Name: "Ada Lovelace", Group: "student"}
}

func TestMemberValidate(t *testing.T) {
	groups := DefaultTariffGroups()
	tests := []struct {
		name    string
		edit    func(*Member)
		wantErr string
		check   func(*testing.T, *Member)
	}{
		{"minimal member gets defaults", func(m *Member) {}, "", func(t *testing.T, m *Member) {
			if m.Role != RoleMaker || m.Payer != PayerSelf || m.Status != StatusActive || m.Language != "fr" {
				t.Errorf("defaults = role %q payer %q status %q language %q", m.Role, m.Payer, m.Status, m.Language)
			}
		}},
		{"email trimmed and lower-cased", func(m *Member) { m.Email = "  Ada.Lovelace@Example.ORG\t" }, "", func(t *testing.T, m *Member) {
			if m.Email != "ada.lovelace@example.org" {
				t.Errorf("email = %q", m.Email)
			}
		}},
		{"name trimmed", func(m *Member) { m.Name = "  Ada  " }, "", func(t *testing.T, m *Member) {
			if m.Name != "Ada" {
				t.Errorf("name = %q", m.Name)
			}
		}},
		{"plus address", func(m *Member) { m.Email = "ada+fablab@example.org" }, "", nil},
		{"explicit roles kept", func(m *Member) { m.Role = RoleAdmin }, "", func(t *testing.T, m *Member) {
			if m.Role != RoleAdmin {
				t.Errorf("role = %q", m.Role)
			}
		}},
		{"organisation member defaults to organisation payer", func(m *Member) { m.Group, m.OrganisationID = "", 4 }, "", func(t *testing.T, m *Member) {
			if m.Payer != PayerOrganisation {
				t.Errorf("payer = %q, want %q", m.Payer, PayerOrganisation)
			}
		}},
		{"organisation member with own group", func(m *Member) { m.OrganisationID = 4 }, "", func(t *testing.T, m *Member) {
			if m.Payer != PayerOrganisation || m.Group != "student" {
				t.Errorf("payer = %q group = %q", m.Payer, m.Group)
			}
		}},
		{"organisation member paying themselves", func(m *Member) { m.OrganisationID, m.Payer = 4, PayerSelf }, "", func(t *testing.T, m *Member) {
			if m.Payer != PayerSelf {
				t.Errorf("payer = %q, want self kept", m.Payer)
			}
		}},
		{"suspended", func(m *Member) { m.Status = StatusSuspended }, "", nil},
		{"english", func(m *Member) { m.Language = "en" }, "", nil},
		{"empty email", func(m *Member) { m.Email = "" }, "email", nil},
		{"no at sign", func(m *Member) { m.Email = "ada.example.org" }, "email", nil},
		{"display name form", func(m *Member) { m.Email = "A <a@b.org>" }, "email", nil},
		{"angle brackets only", func(m *Member) { m.Email = "<a@b.org>" }, "email", nil},
		{"quoted display name", func(m *Member) { m.Email = `"Ada" <ada@example.org>` }, "email", nil},
		{"comment", func(m *Member) { m.Email = "ada@example.org (Ada)" }, "email", nil},
		{"two addresses", func(m *Member) { m.Email = "a@b.org, c@d.org" }, "email", nil},
		{"space inside", func(m *Member) { m.Email = "a da@example.org" }, "email", nil},
		{"too long", func(m *Member) { m.Email = strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".org" }, "email", nil},
		{"empty name", func(m *Member) { m.Name = " " }, "name", nil},
		{"name too long", func(m *Member) { m.Name = strings.Repeat("n", 201) }, "name", nil},
		{"unknown role", func(m *Member) { m.Role = "owner" }, "role", nil},
		{"upper-case role", func(m *Member) { m.Role = "Admin" }, "role", nil},
		{"no group and no organisation", func(m *Member) { m.Group = "" }, "group is required", nil},
		{"unknown group", func(m *Member) { m.Group = "vip" }, `group "vip" is not a tariff group (student, academic, sme, association, non-member, staff)`, nil},
		{"unknown payer", func(m *Member) { m.Payer = "parents" }, "payer", nil},
		{"organisation payer without organisation", func(m *Member) { m.Payer = PayerOrganisation }, "payer organisation needs an organisation_id", nil},
		{"unknown status", func(m *Member) { m.Status = "banned" }, "status", nil},
		{"unknown language", func(m *Member) { m.Language = "de" }, "language", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validMember()
			tt.edit(&m)
			checkErr(t, m.Validate(groups), tt.wantErr)
			if tt.check != nil {
				tt.check(t, &m)
			}
		})
	}
}

func TestMemberValidateIdempotent(t *testing.T) {
	m := validMember()
	m.Email = " ADA@example.org "
	m.OrganisationID = 9
	if err := m.Validate(DefaultTariffGroups()); err != nil {
		t.Fatal(err)
	}
	once := m
	if err := m.Validate(DefaultTariffGroups()); err != nil {
		t.Fatalf("second Validate: %v", err)
	}
	if m != once {
		t.Errorf("second Validate changed the member: %+v → %+v", once, m)
	}
}

func TestNormalizeEmail(t *testing.T) {
	if got := NormalizeEmail("  Ada@Example.ORG \n"); got != "ada@example.org" {
		t.Errorf("NormalizeEmail = %q", got)
	}
}

func TestMemberActiveAt(t *testing.T) {
	until := time.Date(2026, 6, 30, 22, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		status string
		until  *time.Time
		at     time.Time
		want   bool
	}{
		{"active without expiry", StatusActive, nil, until, true},
		{"suspended without expiry", StatusSuspended, nil, until, false},
		{"before expiry", StatusActive, &until, until.Add(-time.Nanosecond), true},
		{"at expiry", StatusActive, &until, until, false},
		{"after expiry", StatusActive, &until, until.Add(time.Second), false},
		{"suspended before expiry", StatusSuspended, &until, until.Add(-time.Hour), false},
		{"unknown status", "banned", nil, until, false},
		{"empty status", "", nil, until, false},
		{"expiry in another location", StatusActive, &until, until.In(time.FixedZone("X", 2*3600)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Member{Status: tt.status, MembershipUntil: tt.until}
			if got := m.ActiveAt(tt.at); got != tt.want {
				t.Errorf("ActiveAt = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRoleAtLeast(t *testing.T) {
	roles := []Role{RoleMaker, RoleStaff, RoleAdmin}
	// want[r][min]: does r have every right of min?
	want := map[Role]map[Role]bool{
		RoleMaker: {RoleMaker: true, RoleStaff: false, RoleAdmin: false},
		RoleStaff: {RoleMaker: true, RoleStaff: true, RoleAdmin: false},
		RoleAdmin: {RoleMaker: true, RoleStaff: true, RoleAdmin: true},
		"":        {RoleMaker: false, RoleStaff: false, RoleAdmin: false},
		"root":    {RoleMaker: false, RoleStaff: false, RoleAdmin: false},
		"ADMIN":   {RoleMaker: false, RoleStaff: false, RoleAdmin: false},
	}
	for r, row := range want {
		for _, min := range roles {
			t.Run(string(r)+"≥"+string(min), func(t *testing.T) {
				if got := r.AtLeast(min); got != row[min] {
					t.Errorf("Role(%q).AtLeast(%q) = %v, want %v", r, min, got, row[min])
				}
			})
		}
	}
}

func TestRoleValid(t *testing.T) {
	tests := []struct {
		role Role
		want bool
	}{
		{RoleMaker, true}, {RoleStaff, true}, {RoleAdmin, true},
		{"", false}, {"Maker", false}, {"owner", false},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			if got := tt.role.Valid(); got != tt.want {
				t.Errorf("Valid() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNormalizeUID(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"upper-case hex", "04A2B3C4D5E6F7", "04A2B3C4D5E6F7", false},
		{"lower-case hex", "04a2b3c4", "04A2B3C4", false},
		{"mixed case", "dEaDbEeF", "DEADBEEF", false},
		{"colons", "04:a2:b3:c4", "04A2B3C4", false},
		{"dashes", "04-A2-B3-C4", "04A2B3C4", false},
		{"spaces", "04 A2 B3 C4", "04A2B3C4", false},
		{"mixed separators", " 04:a2-b3 c4 ", "04A2B3C4", false},
		{"separators between nibbles", "0:4:A:2", "04A2", false},
		{"shortest: 2 bytes", "0A1B", "0A1B", false},
		{"longest: 32 bytes", strings.Repeat("ab", 32), strings.Repeat("AB", 32), false},
		{"longest with separators", strings.Repeat("ab:", 32), strings.Repeat("AB", 32), false},
		{"empty", "", "", true},
		{"only separators", " :-: ", "", true},
		{"one byte", "0A", "", true},
		{"odd length", "04A2B", "", true},
		{"33 bytes", strings.Repeat("ab", 33), "", true},
		{"non-hex letter", "04G2", "", true},
		{"0x prefix", "0x04A2", "", true},
		{"dot separator", "04.A2.B3", "", true},
		{"tab", "04\tA2", "", true},
		{"newline", "04A2\n", "", true},
		{"underscore", "04_A2", "", true},
		{"fullwidth digits", "０４Ａ２", "", true},
		{"accented letter", "04É2", "", true},
		{"invalid UTF-8", "04A2\xff", "", true},
		{"NUL byte", "04A2\x00", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeUID(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NormalizeUID(%q) = %q, want error", tt.in, got)
				}
				if ErrorCode(err) != EINVALID {
					t.Errorf("code = %q, want %q", ErrorCode(err), EINVALID)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeUID(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzNormalizeUID(f *testing.F) {
	for _, s := range []string{"04A2B3C4D5E6F7", "04:a2:b3:c4", "04-A2 B3", "0A", "04A2B", "", "zz", "０４", "\xff\xfe", strings.Repeat("ab", 33)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := NormalizeUID(s)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("NormalizeUID(%q) error code %q, want %q", s, ErrorCode(err), EINVALID)
			}
			return
		}
		if len(u) < 4 || len(u) > 64 || len(u)%2 != 0 {
			t.Fatalf("NormalizeUID(%q) = %q: length %d not even in 4..64", s, u, len(u))
		}
		for i := 0; i < len(u); i++ {
			if c := u[i]; !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
				t.Fatalf("NormalizeUID(%q) = %q contains %q", s, u, c)
			}
		}
		again, err := NormalizeUID(u)
		if err != nil || again != u {
			t.Fatalf("NormalizeUID(NormalizeUID(%q)) = %q, %v, want %q", s, again, err, u)
		}
	})
}

func TestOrganisationValidate(t *testing.T) {
	groups := DefaultTariffGroups()
	tests := []struct {
		name    string
		edit    func(*Organisation)
		wantErr string
	}{
		{"valid", func(o *Organisation) {}, ""},
		{"with VAT number", func(o *Organisation) { o.VATNumber = "FR40303265045" }, ""},
		{"no billing address", func(o *Organisation) { o.BillingAddress = "" }, ""},
		{"address of 1000", func(o *Organisation) { o.BillingAddress = strings.Repeat("a", 1000) }, ""},
		{"empty name", func(o *Organisation) { o.Name = "\t" }, "name"},
		{"name too long", func(o *Organisation) { o.Name = strings.Repeat("n", 201) }, "name"},
		{"no group", func(o *Organisation) { o.Group = "" }, `group "" is not a tariff group`},
		{"unknown group", func(o *Organisation) { o.Group = "big-corp" }, `group "big-corp" is not a tariff group`},
		{"address too long", func(o *Organisation) { o.BillingAddress = strings.Repeat("a", 1001) }, "billing_address"},
		{"VAT number too long", func(o *Organisation) { o.VATNumber = strings.Repeat("9", 41) }, "vat_number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Organisation{Name: "  Atelier Dupont  ", Group: "sme", BillingAddress: "1 rue de la Paix, Paris"}
			tt.edit(&o)
			checkErr(t, o.Validate(groups), tt.wantErr)
			if tt.wantErr == "" && o.Name != "Atelier Dupont" {
				t.Errorf("name not trimmed: %q", o.Name)
			}
		})
	}
}

func TestTrainingValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Training)
		wantErr string
	}{
		{"valid", func(tr *Training) {}, ""},
		{"no expiry", func(tr *Training) { tr.ValidityMonths = 0 }, ""},
		{"validity 240", func(tr *Training) { tr.ValidityMonths = 240 }, ""},
		{"description of 4000", func(tr *Training) { tr.Description = strings.Repeat("d", 4000) }, ""},
		{"empty name", func(tr *Training) { tr.Name = "" }, "name"},
		{"blank name", func(tr *Training) { tr.Name = "   " }, "name"},
		{"name too long", func(tr *Training) { tr.Name = strings.Repeat("n", 201) }, "name"},
		{"description too long", func(tr *Training) { tr.Description = strings.Repeat("d", 4001) }, "description"},
		{"negative validity", func(tr *Training) { tr.ValidityMonths = -1 }, "validity_months"},
		{"validity 241", func(tr *Training) { tr.ValidityMonths = 241 }, "validity_months"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := Training{Name: " Laser safety ", ValidityMonths: 12}
			tt.edit(&tr)
			checkErr(t, tr.Validate(), tt.wantErr)
			if tt.wantErr == "" && tr.Name != "Laser safety" {
				t.Errorf("name not trimmed: %q", tr.Name)
			}
		})
	}
}

func TestQualificationValidAt(t *testing.T) {
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		expires *time.Time
		at      time.Time
		want    bool
	}{
		{"never expires", nil, exp.AddDate(50, 0, 0), true},
		{"before expiry", &exp, exp.Add(-time.Nanosecond), true},
		{"at expiry", &exp, exp, false},
		{"after expiry", &exp, exp.Add(time.Minute), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := Qualification{MemberID: 1, TrainingID: 2, ExpiresAt: tt.expires}
			if got := q.ValidAt(tt.at); got != tt.want {
				t.Errorf("ValidAt = %v, want %v", got, tt.want)
			}
		})
	}
}
