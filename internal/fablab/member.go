package fablab

import (
	"net/mail"
	"strings"
	"time"
)

// Role is a member's role.
type Role string

// Roles, from least to most privileged.
const (
	RoleMaker Role = "maker"
	RoleStaff Role = "staff"
	RoleAdmin Role = "admin"
)

// AtLeast reports whether r has every right of min.
func (r Role) AtLeast(min Role) bool { return r.rank() >= min.rank() }

func (r Role) rank() int {
	switch r {
	case RoleAdmin:
		return 3
	case RoleStaff:
		return 2
	case RoleMaker:
		return 1
	}
	return 0
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r.rank() > 0 }

// Member statuses.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
)

// Payers of a member's charges.
const (
	PayerSelf         = "self"
	PayerOrganisation = "organisation"
)

// Member is a person who uses the lab.
type Member struct {
	ID              ID         `json:"id"`
	Email           string     `json:"email"`
	Name            string     `json:"name"`
	Role            Role       `json:"role"`
	Group           string     `json:"group"` // own tariff group; the organisation's when empty
	OrganisationID  ID         `json:"organisation_id,omitempty"`
	Payer           string     `json:"payer"`
	Status          string     `json:"status"`
	MembershipUntil *time.Time `json:"membership_until,omitempty"`
	PrepaidMinutes  int64      `json:"prepaid_minutes"`
	Language        string     `json:"language"`
	PasswordHash    string     `json:"-"`
	CreatedAt       time.Time  `json:"created_at"`
}

// NormalizeEmail returns the canonical (trimmed, lower-case) form used for lookups.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Validate checks a member and fills defaults. groups lists the valid tariff
// groups.
func (m *Member) Validate(groups []TariffGroup) error {
	m.Email = NormalizeEmail(m.Email)
	m.Name = strings.TrimSpace(m.Name)
	if a, err := mail.ParseAddress(m.Email); err != nil || a.Address != m.Email || len(m.Email) > 254 {
		return Errorf(EINVALID, "email %q is not a valid address", truncate(m.Email, 80))
	}
	if m.Name == "" || len(m.Name) > 200 {
		return Errorf(EINVALID, "name must be 1–200 characters")
	}
	if m.Role == "" {
		m.Role = RoleMaker
	}
	if !m.Role.Valid() {
		return Errorf(EINVALID, "role must be maker, staff or admin, got %q", truncate(string(m.Role), 20))
	}
	if m.Group == "" && m.OrganisationID == 0 {
		return Errorf(EINVALID, "group is required for a member without an organisation")
	}
	if m.Group != "" && !hasGroup(groups, m.Group) {
		return Errorf(EINVALID, "group %q is not a tariff group (%s)", truncate(m.Group, 40), groupList(groups))
	}
	if m.Payer == "" {
		m.Payer = PayerSelf
		if m.OrganisationID != 0 {
			m.Payer = PayerOrganisation
		}
	}
	if m.Payer != PayerSelf && m.Payer != PayerOrganisation {
		return Errorf(EINVALID, "payer must be self or organisation")
	}
	if m.Payer == PayerOrganisation && m.OrganisationID == 0 {
		return Errorf(EINVALID, "payer organisation needs an organisation_id")
	}
	if m.Status == "" {
		m.Status = StatusActive
	}
	if m.Status != StatusActive && m.Status != StatusSuspended {
		return Errorf(EINVALID, "status must be active or suspended")
	}
	if m.Language == "" {
		m.Language = "fr"
	}
	if m.Language != "fr" && m.Language != "en" {
		return Errorf(EINVALID, "language must be fr or en")
	}
	return nil
}

// ActiveAt reports whether the member may use the lab at t: not suspended and
// membership (if limited) still valid.
func (m *Member) ActiveAt(t time.Time) bool {
	if m.Status != StatusActive {
		return false
	}
	return m.MembershipUntil == nil || t.Before(*m.MembershipUntil)
}

func hasGroup(gs []TariffGroup, id string) bool {
	for _, g := range gs {
		if g.ID == id {
			return true
		}
	}
	return false
}

func groupList(gs []TariffGroup) string {
	ids := make([]string, len(gs))
	for i, g := range gs {
		ids[i] = g.ID
	}
	return strings.Join(ids, ", ")
}

// Organisation is a member entity (company, school, association) that can pay
// for its makers.
type Organisation struct {
	ID             ID        `json:"id"`
	Name           string    `json:"name"`
	Group          string    `json:"group"`
	BillingAddress string    `json:"billing_address"`
	VATNumber      string    `json:"vat_number,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// Validate checks an organisation.
func (o *Organisation) Validate(groups []TariffGroup) error {
	o.Name = strings.TrimSpace(o.Name)
	if o.Name == "" || len(o.Name) > 200 {
		return Errorf(EINVALID, "name must be 1–200 characters")
	}
	if !hasGroup(groups, o.Group) {
		return Errorf(EINVALID, "group %q is not a tariff group (%s)", truncate(o.Group, 40), groupList(groups))
	}
	if len(o.BillingAddress) > 1000 || len(o.VATNumber) > 40 {
		return Errorf(EINVALID, "billing_address is limited to 1000 characters and vat_number to 40")
	}
	return nil
}

// Badge links a credential (by keyed hash of its UID) to a member.
type Badge struct {
	Hash      string    `json:"hash"` // hex HMAC-SHA256 of the normalised UID
	MemberID  ID        `json:"member_id"`
	Label     string    `json:"label,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// NormalizeUID returns the canonical form of a badge UID: upper-case hex, with
// separators (spaces, colons, dashes) removed. It fails for anything else.
func NormalizeUID(s string) (string, error) {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c == ' ' || c == ':' || c == '-':
		case c >= '0' && c <= '9' || c >= 'A' && c <= 'F':
			b.WriteRune(c)
		case c >= 'a' && c <= 'f':
			b.WriteRune(c - 'a' + 'A')
		default:
			return "", Errorf(EINVALID, "badge uid must be hexadecimal (e.g. 04A2B3C4D5E6F7)")
		}
	}
	u := b.String()
	if len(u) < 4 || len(u) > 64 || len(u)%2 != 0 {
		return "", Errorf(EINVALID, "badge uid must be 2 to 32 bytes of hexadecimal, got %d digits", len(u))
	}
	return u, nil
}

// Training is a course that qualifies members for machines.
type Training struct {
	ID             ID        `json:"id"`
	Name           string    `json:"name"`
	Description    string    `json:"description,omitempty"`
	ValidityMonths int       `json:"validity_months,omitempty"` // 0 = does not expire
	CreatedAt      time.Time `json:"created_at"`
}

// Validate checks a training.
func (t *Training) Validate() error {
	t.Name = strings.TrimSpace(t.Name)
	if t.Name == "" || len(t.Name) > 200 {
		return Errorf(EINVALID, "name must be 1–200 characters")
	}
	if len(t.Description) > 4000 {
		return Errorf(EINVALID, "description is limited to 4000 characters")
	}
	if t.ValidityMonths < 0 || t.ValidityMonths > 240 {
		return Errorf(EINVALID, "validity_months must be between 0 (no expiry) and 240")
	}
	return nil
}

// Qualification records that a member passed a training.
type Qualification struct {
	MemberID   ID         `json:"member_id"`
	TrainingID ID         `json:"training_id"`
	GrantedBy  ID         `json:"granted_by,omitempty"`
	GrantedAt  time.Time  `json:"granted_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// ValidAt reports whether q is in force at t.
func (q *Qualification) ValidAt(t time.Time) bool {
	return q.ExpiresAt == nil || t.Before(*q.ExpiresAt)
}
