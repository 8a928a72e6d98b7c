package bolt

import (
	"context"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// MemberImport is one member to import, with the hashes of their badges
// and the trainings they hold (granted by GrantedBy, not expiring).
type MemberImport struct {
	Member    fablab.Member
	Badges    []string
	Trainings []fablab.ID
	GrantedBy fablab.ID
}

// ImportMembers stores many members, their badges and qualifications in one
// write transaction: all or nothing, one commit (a lab moving from another
// system, and tests at the scale of a large lab). Each member is checked as
// CreateMember checks it. Import a few thousand members per call: within
// one transaction bbolt inserts into unsplit nodes, which grows in the
// square of the count. Errors: EINVALID, ENOTFOUND (organisation,
// training), "email_taken", "badge_taken".
func (s *Store) ImportMembers(ctx context.Context, in []MemberImport) ([]fablab.Member, error) {
	out := make([]fablab.Member, 0, len(in))
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		out = out[:0]
		now := s.now().UTC().Truncate(0)
		emails, badges := tx.Bucket(bMembersEmail), tx.Bucket(bBadges)
		for _, mi := range in {
			m := mi.Member
			if err := validateMember(tx, &m); err != nil {
				return err
			}
			if emails.Get([]byte(m.Email)) != nil {
				return fablab.Errorf("email_taken", "a member with email %s already exists", m.Email)
			}
			id, err := nextID(tx.Bucket(bMembers))
			if err != nil {
				return err
			}
			m.ID, m.CreatedAt = id, now
			if err := emails.Put([]byte(m.Email), itob(id)); err != nil {
				return err
			}
			if err := putMember(tx, m, 0); err != nil {
				return err
			}
			for _, h := range mi.Badges {
				if badges.Get([]byte(h)) != nil {
					return fablab.Errorf("badge_taken", "a badge of %s is already enrolled", m.Email)
				}
				if err := tx.Bucket(bBadgesMember).Put(cat(itob(id), []byte(h)), nil); err != nil {
					return err
				}
				if err := putJSON(badges, []byte(h), fablab.Badge{Hash: h, MemberID: id, CreatedAt: now}); err != nil {
					return err
				}
			}
			for _, t := range mi.Trainings {
				if tx.Bucket(bTrainings).Get(itob(t)) == nil {
					return fablab.Errorf(fablab.ENOTFOUND, "training %s does not exist", t)
				}
				if mi.GrantedBy == 0 {
					return fablab.Errorf(fablab.EINVALID, "granted_by is required")
				}
				q := fablab.Qualification{MemberID: id, TrainingID: t, GrantedBy: mi.GrantedBy, GrantedAt: now}
				if err := putJSON(tx.Bucket(bQualifications), cat(itob(id), itob(t)), q); err != nil {
					return err
				}
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
