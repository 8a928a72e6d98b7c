package bolt

import (
	"bytes"
	"context"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// memberRecord is a member as stored: the member plus the password hash,
// which fablab.Member never serialises.
type memberRecord struct {
	fablab.Member
	PasswordHash string `json:"password_hash,omitempty"`
	// SessionGen is bumped when the password changes or the member is
	// suspended: tokens issued under an older generation stop working.
	SessionGen uint64 `json:"session_gen,omitempty"`
}

func getMember(tx *bbolt.Tx, id fablab.ID) (memberRecord, error) {
	var r memberRecord
	err := getJSON(tx.Bucket(bMembers), itob(id), &r, fmt.Sprintf("member %s", id))
	r.Member.PasswordHash = r.PasswordHash
	return r, err
}

// readMember is getMember through the decode cache, for read-only use.
func (s *Store) readMember(tx *bbolt.Tx, id fablab.ID) (memberRecord, error) {
	raw := tx.Bucket(bMembers).Get(itob(id))
	if raw == nil {
		return memberRecord{}, fablab.Errorf(fablab.ENOTFOUND, "member %s does not exist", id)
	}
	return s.memberCache.get(id, raw)
}

func decodeMember(raw []byte) (memberRecord, error) {
	var r memberRecord
	err := getJSONBytes(raw, &r)
	r.Member.PasswordHash = r.PasswordHash
	return r, err
}

func putMember(tx *bbolt.Tx, m fablab.Member, sessionGen uint64) error {
	return putJSON(tx.Bucket(bMembers), itob(m.ID), memberRecord{Member: m, PasswordHash: m.PasswordHash, SessionGen: sessionGen})
}

// validateMember checks m against the tariff groups and its organisation.
func validateMember(tx *bbolt.Tx, m *fablab.Member) error {
	gs, err := loadTariffs(tx)
	if err != nil {
		return err
	}
	if err := m.Validate(gs); err != nil {
		return err
	}
	if m.OrganisationID != 0 && tx.Bucket(bOrganisations).Get(itob(m.OrganisationID)) == nil {
		return fablab.Errorf(fablab.ENOTFOUND, "organisation %s does not exist", m.OrganisationID)
	}
	return nil
}

// CreateMember validates and stores a new member (with m.PasswordHash, which
// may be empty). Errors: EINVALID, ENOTFOUND (organisation), ECONFLICT
// (email already used, code "email_taken").
func (s *Store) CreateMember(ctx context.Context, m fablab.Member) (fablab.Member, error) {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if err := validateMember(tx, &m); err != nil {
			return err
		}
		emails := tx.Bucket(bMembersEmail)
		if emails.Get([]byte(m.Email)) != nil {
			return fablab.Errorf("email_taken", "a member with email %s already exists", m.Email)
		}
		id, err := nextID(tx.Bucket(bMembers))
		if err != nil {
			return err
		}
		m.ID = id
		m.CreatedAt = s.now().UTC().Truncate(0)
		if err := emails.Put([]byte(m.Email), itob(id)); err != nil {
			return err
		}
		return putMember(tx, m, 0)
	})
	return m, err
}

// Member returns a member (with its password hash). Errors: ENOTFOUND.
func (s *Store) Member(ctx context.Context, id fablab.ID) (fablab.Member, error) {
	var r memberRecord
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		r, err = s.readMember(tx, id)
		return err
	})
	return r.Member, err
}

// MemberByEmail finds a member by email (case-insensitive). Errors: ENOTFOUND.
func (s *Store) MemberByEmail(ctx context.Context, email string) (fablab.Member, error) {
	var r memberRecord
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		id := tx.Bucket(bMembersEmail).Get([]byte(fablab.NormalizeEmail(email)))
		if id == nil {
			return fablab.Errorf(fablab.ENOTFOUND, "no member has this email")
		}
		r, err = s.readMember(tx, btoi(id))
		return err
	})
	return r.Member, err
}

// UpdateMember applies fn to a member and stores it if it still validates.
// The email index follows email changes. A new password, a new role or a
// suspension ends the member's sessions, voids their password resets (a
// link issued by staff to a maker must not become a way into an admin
// account) and deletes their calendar feed. Errors: ENOTFOUND, EINVALID,
// "email_taken", and whatever fn returns.
func (s *Store) UpdateMember(ctx context.Context, id fablab.ID, fn func(*fablab.Member) error) (fablab.Member, error) {
	var out fablab.Member
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := getMember(tx, id)
		if err != nil {
			return err
		}
		m := r.Member
		old := m.Email
		if err := fn(&m); err != nil {
			return err
		}
		m.ID, m.CreatedAt = id, r.CreatedAt
		if err := validateMember(tx, &m); err != nil {
			return err
		}
		if m.Email != old {
			emails := tx.Bucket(bMembersEmail)
			if emails.Get([]byte(m.Email)) != nil {
				return fablab.Errorf("email_taken", "a member with email %s already exists", m.Email)
			}
			if err := emails.Delete([]byte(old)); err != nil {
				return err
			}
			if err := emails.Put([]byte(m.Email), itob(id)); err != nil {
				return err
			}
		}
		if r.Role == fablab.RoleMaker && m.Role != fablab.RoleMaker && m.PasswordHash == r.PasswordHash {
			// A maker's password may have been chosen by staff (who set
			// makers' passwords at the desk): it must not open a staff or
			// admin account. The promoted member gets in again with a
			// password set in the same change or a reset link an admin
			// issues.
			m.PasswordHash = ""
		}
		gen := r.SessionGen
		if m.PasswordHash != r.PasswordHash || m.Role != r.Role || (m.Status == fablab.StatusSuspended && r.Status != fablab.StatusSuspended) {
			gen++ // ends the member's sessions and voids their reset links
			// The calendar feed goes with them: a feed made from a
			// stolen session must not outlive the new password.
			if err := deleteFeed(tx, id); err != nil {
				return err
			}
		}
		out = m
		return putMember(tx, m, gen)
	})
	return out, err
}

// Members lists members by id, limit at a time, after the given id.
func (s *Store) Members(ctx context.Context, after fablab.ID, limit int) (Page[fablab.Member], error) {
	var out Page[fablab.Member]
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		p, err := listByID[memberRecord](tx, bMembers, after, limit)
		out.Next = p.Next
		out.Items = make([]fablab.Member, len(p.Items))
		for i, r := range p.Items {
			out.Items[i] = r.Member
		}
		return err
	})
	return out, err
}

// CountMembers returns the number of members.
func (s *Store) CountMembers(ctx context.Context) (int, error) {
	var n int
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		n = tx.Bucket(bMembers).Stats().KeyN
		return nil
	})
	return n, err
}

// ---- organisations ----

// CreateOrganisation validates and stores an organisation. Errors: EINVALID.
func (s *Store) CreateOrganisation(ctx context.Context, o fablab.Organisation) (fablab.Organisation, error) {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		gs, err := loadTariffs(tx)
		if err != nil {
			return err
		}
		if err := o.Validate(gs); err != nil {
			return err
		}
		b := tx.Bucket(bOrganisations)
		if o.ID, err = nextID(b); err != nil {
			return err
		}
		o.CreatedAt = s.now().UTC().Truncate(0)
		return putJSON(b, itob(o.ID), o)
	})
	return o, err
}

// Organisation returns one organisation. Errors: ENOTFOUND.
func (s *Store) Organisation(ctx context.Context, id fablab.ID) (fablab.Organisation, error) {
	var o fablab.Organisation
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bOrganisations), itob(id), &o, fmt.Sprintf("organisation %s", id))
	})
	return o, err
}

// Organisations lists organisations by id.
func (s *Store) Organisations(ctx context.Context, after fablab.ID, limit int) (Page[fablab.Organisation], error) {
	var out Page[fablab.Organisation]
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		out, err = listByID[fablab.Organisation](tx, bOrganisations, after, limit)
		return err
	})
	return out, err
}

// ---- trainings and qualifications ----

// CreateTraining validates and stores a training. Errors: EINVALID.
func (s *Store) CreateTraining(ctx context.Context, t fablab.Training) (fablab.Training, error) {
	if err := t.Validate(); err != nil {
		return t, err
	}
	err := s.update(ctx, func(tx *bbolt.Tx) (err error) {
		b := tx.Bucket(bTrainings)
		if t.ID, err = nextID(b); err != nil {
			return err
		}
		t.CreatedAt = s.now().UTC().Truncate(0)
		return putJSON(b, itob(t.ID), t)
	})
	return t, err
}

// Training returns one training. Errors: ENOTFOUND.
func (s *Store) Training(ctx context.Context, id fablab.ID) (fablab.Training, error) {
	var t fablab.Training
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return getJSON(tx.Bucket(bTrainings), itob(id), &t, fmt.Sprintf("training %s", id))
	})
	return t, err
}

// Trainings lists trainings by id.
func (s *Store) Trainings(ctx context.Context, after fablab.ID, limit int) (Page[fablab.Training], error) {
	var out Page[fablab.Training]
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		out, err = listByID[fablab.Training](tx, bTrainings, after, limit)
		return err
	})
	return out, err
}

// GrantQualification records (or renews) a member's qualification. Errors:
// ENOTFOUND (member or training), EINVALID (no granted_by, expiry not after grant).
func (s *Store) GrantQualification(ctx context.Context, q fablab.Qualification) (fablab.Qualification, error) {
	if q.GrantedBy == 0 {
		// fablab.ID refuses to decode 0: the stored qualification could not be
		// read back, and every later read of the member's qualifications would fail.
		return q, fablab.Errorf(fablab.EINVALID, "granted_by is required")
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if _, err := getMember(tx, q.MemberID); err != nil {
			return err
		}
		if tx.Bucket(bTrainings).Get(itob(q.TrainingID)) == nil {
			return fablab.Errorf(fablab.ENOTFOUND, "training %s does not exist", q.TrainingID)
		}
		q.GrantedAt = s.now().UTC().Truncate(0)
		if q.ExpiresAt != nil {
			if !q.ExpiresAt.After(q.GrantedAt) {
				return fablab.Errorf(fablab.EINVALID, "expires_at must be in the future")
			}
			exp := q.ExpiresAt.UTC()
			q.ExpiresAt = &exp
		}
		return putJSON(tx.Bucket(bQualifications), cat(itob(q.MemberID), itob(q.TrainingID)), q)
	})
	return q, err
}

func qualificationsOf(tx *bbolt.Tx, member fablab.ID) ([]fablab.Qualification, error) {
	out := []fablab.Qualification{}
	prefix := itob(member)
	c := tx.Bucket(bQualifications).Cursor()
	for k, v := c.Seek(prefix); len(k) == 16 && string(k[:8]) == string(prefix); k, v = c.Next() {
		var q fablab.Qualification
		if err := getJSONBytes(v, &q); err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

// Qualifications returns a member's qualifications.
func (s *Store) Qualifications(ctx context.Context, member fablab.ID) ([]fablab.Qualification, error) {
	var out []fablab.Qualification
	err := s.view(ctx, func(tx *bbolt.Tx) (err error) {
		if _, err := getMember(tx, member); err != nil {
			return err
		}
		out, err = qualificationsOf(tx, member)
		return err
	})
	return out, err
}

// ---- badges ----

// AddBadge links the badge whose keyed hash is hash to a member. Errors:
// ENOTFOUND (member), "badge_taken" (the badge belongs to a member already).
func (s *Store) AddBadge(ctx context.Context, b fablab.Badge) (fablab.Badge, error) {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if _, err := getMember(tx, b.MemberID); err != nil {
			return err
		}
		badges := tx.Bucket(bBadges)
		if v := badges.Get([]byte(b.Hash)); v != nil {
			var cur fablab.Badge
			if err := getJSONBytes(v, &cur); err != nil {
				return err
			}
			if cur.MemberID == b.MemberID {
				b = cur // idempotent
				return nil
			}
			return fablab.Errorf("badge_taken", "this badge is already enrolled to another member; remove it there first")
		}
		b.CreatedAt = s.now().UTC().Truncate(0)
		if err := tx.Bucket(bBadgesMember).Put(cat(itob(b.MemberID), []byte(b.Hash)), nil); err != nil {
			return err
		}
		return putJSON(badges, []byte(b.Hash), b)
	})
	return b, err
}

// Badges returns a member's badges.
func (s *Store) Badges(ctx context.Context, member fablab.ID) ([]fablab.Badge, error) {
	out := []fablab.Badge{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		prefix := itob(member)
		c := tx.Bucket(bBadgesMember).Cursor()
		badges := tx.Bucket(bBadges)
		for k, _ := c.Seek(prefix); len(k) > 8 && string(k[:8]) == string(prefix); k, _ = c.Next() {
			var b fablab.Badge
			if err := getJSON(badges, k[8:], &b, "badge"); err != nil {
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	return out, err
}

// BadgeOwner returns the member a badge hash is enrolled to. Errors: ENOTFOUND.
func (s *Store) BadgeOwner(ctx context.Context, hash string) (fablab.Member, error) {
	var r memberRecord
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var b fablab.Badge
		if err := getJSON(tx.Bucket(bBadges), []byte(hash), &b, "badge"); err != nil {
			return err
		}
		var err error
		r, err = s.readMember(tx, b.MemberID)
		return err
	})
	return r.Member, err
}

// RehashPassword replaces a member's password hash by newHash, a hash of the
// same password under new parameters, if it is still oldHash. Sessions are
// kept: the password did not change.
func (s *Store) RehashPassword(ctx context.Context, id fablab.ID, oldHash, newHash string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := getMember(tx, id)
		if err != nil || r.PasswordHash != oldHash {
			return err // changed meanwhile: leave the new password alone
		}
		m := r.Member
		m.PasswordHash = newHash
		return putMember(tx, m, r.SessionGen)
	})
}

// RemoveBadge unlinks a badge from a member. Errors: ENOTFOUND (no such badge
// on this member).
func (s *Store) RemoveBadge(ctx context.Context, member fablab.ID, hash string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		idx := cat(itob(member), []byte(hash))
		// Index values are empty: test for the key itself.
		if k, _ := tx.Bucket(bBadgesMember).Cursor().Seek(idx); !bytes.Equal(k, idx) {
			return fablab.Errorf(fablab.ENOTFOUND, "member %s has no such badge", member)
		}
		if err := tx.Bucket(bBadgesMember).Delete(idx); err != nil {
			return err
		}
		return tx.Bucket(bBadges).Delete([]byte(hash))
	})
}
