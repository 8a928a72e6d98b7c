package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
)

// memberRequest is the body of POST /members; PATCH takes the same fields,
// all optional.
type memberRequest struct {
	Email           *string      `json:"email"`
	Name            *string      `json:"name"`
	Role            *fablab.Role `json:"role"`
	Group           *string      `json:"group"`
	OrganisationID  *fablab.ID   `json:"organisation_id"`
	Payer           *string      `json:"payer"`
	Status          *string      `json:"status"`
	MembershipUntil *time.Time   `json:"membership_until"`
	Language        *string      `json:"language"`
	Password        *string      `json:"password"`
}

// validate checks what the store cannot: that membership_until can be stored.
func (r *memberRequest) validate() error {
	if r.MembershipUntil != nil {
		return checkInstant("membership_until", *r.MembershipUntil)
	}
	return nil
}

func (r *memberRequest) apply(m *fablab.Member) {
	set(&m.Email, r.Email)
	set(&m.Name, r.Name)
	set(&m.Role, r.Role)
	set(&m.Group, r.Group)
	set(&m.OrganisationID, r.OrganisationID)
	set(&m.Payer, r.Payer)
	set(&m.Status, r.Status)
	set(&m.Language, r.Language)
	if r.MembershipUntil != nil {
		t := r.MembershipUntil.UTC()
		m.MembershipUntil = &t
	}
}

func (s *Server) listMembers(c *gin.Context) {
	after, err := queryID(c, "after")
	if err != nil {
		s.fail(c, err)
		return
	}
	limit, err := queryInt(c, "limit", 100, 1, 1000)
	if err != nil {
		s.fail(c, err)
		return
	}
	p, err := s.store.Members(c.Request.Context(), after, limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	resp := gin.H{"items": p.Items}
	if p.Next != 0 {
		resp["next"] = p.Next
	}
	c.JSON(http.StatusOK, resp)
}

func (s *Server) createMember(c *gin.Context) {
	var req memberRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := req.validate(); err != nil {
		s.fail(c, err)
		return
	}
	if req.Email == nil || req.Name == nil {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "email and name are required"))
		return
	}
	m := fablab.Member{Role: fablab.RoleMaker}
	orgTouches, err := s.organisationTouches(c, &req)
	if err == nil {
		err = authorize(c, nil, append(req.adminTouches(m), orgTouches...))
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	req.apply(&m)
	if req.Password != nil {
		h, ok := s.hashPassword(c, *req.Password)
		if !ok {
			return
		}
		m.PasswordHash = h
	}
	m, err = s.store.CreateMember(c.Request.Context(), m)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("member created", "member", m.ID, "role", m.Role, "by", member(c).ID)
	if req.Password == nil && m.Status == fablab.StatusActive { // a suspended member's link would not work
		s.invite(c.Request.Context(), m, member(c).ID)
	}
	c.JSON(http.StatusCreated, m)
}

// visibleMemberID returns the :id of a member the caller may see: themselves,
// or anyone for staff.
func visibleMemberID(c *gin.Context) (fablab.ID, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return 0, err
	}
	if id != member(c).ID && !isStaff(c) {
		return 0, fablab.Errorf(fablab.ENOTFOUND, "member %s does not exist", id)
	}
	return id, nil
}

func (s *Server) getMember(c *gin.Context) {
	id, err := visibleMemberID(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	m, err := s.store.Member(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, m)
}

func (s *Server) patchMember(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	var req memberRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := req.validate(); err != nil {
		s.fail(c, err)
		return
	}
	orgTouches, err := s.organisationTouches(c, &req)
	if err != nil {
		s.fail(c, err)
		return
	}
	var hash string
	if req.Password != nil {
		var ok bool
		if hash, ok = s.hashPassword(c, *req.Password); !ok {
			return
		}
	}
	m, err := s.store.UpdateMember(c.Request.Context(), id, func(m *fablab.Member) error {
		if err := authorize(c, m, append(req.adminTouches(*m), orgTouches...)); err != nil {
			return err
		}
		req.apply(m)
		if hash != "" {
			m.PasswordHash = hash
		}
		return nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.accessChanged()
	s.log.Info("member updated", "member", id, "by", member(c).ID)
	c.JSON(http.StatusOK, m)
}

// badgeRequest names the badge by its uid, or by the hash of an unknown
// badge tapped in the last 24 hours (GET /taps/unknown): "enrol the badge
// just tapped on the laser".
type badgeRequest struct {
	UID   string `json:"uid"`
	Hash  string `json:"hash"`
	Label string `json:"label"`
}

func (s *Server) addBadge(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	var req badgeRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if len(req.Label) > 100 {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "label is limited to 100 characters"))
		return
	}
	if err := s.authorizeOn(c, id); err != nil {
		s.fail(c, err)
		return
	}
	hash, err := s.badgeHash(c.Request.Context(), req)
	if err != nil {
		s.fail(c, err)
		return
	}
	b, err := s.store.AddBadge(c.Request.Context(), fablab.Badge{Hash: hash, MemberID: id, Label: req.Label})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.accessChanged()
	s.log.Info("badge enrolled", "member", id, "by", member(c).ID)
	c.JSON(http.StatusCreated, b)
}

func (s *Server) listBadges(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	if _, err := s.store.Member(c.Request.Context(), id); err != nil {
		s.fail(c, err)
		return
	}
	bs, err := s.store.Badges(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, bs)
}

type qualificationRequest struct {
	TrainingID fablab.ID  `json:"training_id"`
	ExpiresAt  *time.Time `json:"expires_at"`
}

func (s *Server) grantQualification(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := pathID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	var req qualificationRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.TrainingID == 0 {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "training_id is required"))
		return
	}
	if err := s.authorizeOn(c, id); err != nil {
		s.fail(c, err)
		return
	}
	t, err := s.store.Training(ctx, req.TrainingID)
	if err != nil {
		s.fail(c, err)
		return
	}
	q := fablab.Qualification{MemberID: id, TrainingID: t.ID, GrantedBy: member(c).ID, ExpiresAt: req.ExpiresAt}
	if q.ExpiresAt == nil && t.ValidityMonths > 0 {
		exp := s.now().UTC().AddDate(0, t.ValidityMonths, 0).Truncate(time.Second)
		q.ExpiresAt = &exp
	}
	q, err = s.store.GrantQualification(ctx, q)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.accessChanged()
	s.log.Info("qualification granted", "member", id, "training", t.ID, "by", member(c).ID)
	c.JSON(http.StatusCreated, q)
}

func (s *Server) listQualifications(c *gin.Context) {
	id, err := visibleMemberID(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	qs, err := s.store.Qualifications(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, qs)
}

func (s *Server) removeBadge(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.authorizeOn(c, id); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.RemoveBadge(c.Request.Context(), id, c.Param("hash")); err != nil {
		s.fail(c, err)
		return
	}
	s.accessChanged()
	s.log.Info("badge removed", "member", id, "by", member(c).ID)
	c.Status(http.StatusNoContent)
}

// resetTTL is how long a password reset link stays valid.
const resetTTL = 72 * time.Hour

type passwordResetResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// createPasswordReset issues a one-time reset token for a member: the way in
// for a member created without a password, or who forgot it. Staff hand it
// over (by e-mail or in person); it works once, for 72 hours.
func (s *Server) createPasswordReset(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := pathID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	target, err := s.store.Member(ctx, id)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := authorize(c, &target, nil); err != nil {
		s.fail(c, err)
		return
	}
	token := auth.NewToken()
	exp := s.now().Add(resetTTL).UTC().Truncate(time.Second)
	if err := s.store.PutPasswordReset(ctx, auth.TokenKey(token), bolt.PasswordReset{MemberID: id, CreatedBy: member(c).ID, ExpiresAt: exp}); err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("password reset issued", "member", id, "by", member(c).ID)
	c.JSON(http.StatusCreated, passwordResetResponse{Token: token, ExpiresAt: exp})
}

type resetPasswordRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

func (s *Server) resetPassword(c *gin.Context) {
	ctx := c.Request.Context()
	var req resetPasswordRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if req.Token == "" || len(req.Token) > 100 {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "token is required: the one given by the lab's staff"))
		return
	}
	key := auth.TokenKey(req.Token)
	if ok, err := s.store.PasswordResetExists(ctx, key); err != nil || !ok {
		if err == nil {
			err = fablab.Errorf(fablab.EUNAUTHORIZED, "this reset link is unknown, used or expired; ask the lab's staff for a new one")
		}
		s.fail(c, err)
		return
	}
	hash, ok := s.hashPassword(c, req.Password)
	if !ok {
		return
	}
	m, err := s.store.UsePasswordReset(ctx, key, hash)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("password reset used", "member", m.ID)
	c.Status(http.StatusNoContent)
}

// hashPassword hashes a new password in one of the hashing slots; when it
// cannot (no slot free, a password of the wrong length) it has answered the
// request.
func (s *Server) hashPassword(c *gin.Context, password string) (string, bool) {
	release, ok := s.hashSlot(c)
	if !ok {
		return "", false
	}
	defer release()
	h, err := auth.HashPassword(s.pw, password)
	if err != nil {
		s.fail(c, err)
		return "", false
	}
	return h, true
}

// badgeHash returns the stored hash of the badge a request names.
func (s *Server) badgeHash(ctx context.Context, req badgeRequest) (string, error) {
	switch {
	case req.UID != "" && req.Hash != "":
		return "", fablab.Errorf(fablab.EINVALID, "give either uid or hash, not both")
	case req.Hash != "":
		recent, err := s.store.UnknownTaps(ctx)
		if err != nil {
			return "", err
		}
		for _, t := range recent {
			if t.Hash == req.Hash {
				return t.Hash, nil
			}
		}
		return "", fablab.Errorf(fablab.ENOTFOUND, "no unknown badge with this hash was tapped in the last 24 hours (see GET /api/v1/taps/unknown)")
	}
	uid, err := fablab.NormalizeUID(req.UID)
	if err != nil {
		return "", err
	}
	return auth.BadgeHash(s.store.BadgeSecret(), uid), nil
}
