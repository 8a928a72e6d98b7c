package bolt

import (
	"context"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// Token is an authentication token as stored (under the SHA-256 of the raw
// token, which is never stored).
type Token struct {
	MemberID  fablab.ID `json:"member_id"`
	CSRF      string    `json:"csrf"` // secret the web UI echoes in X-CSRF-Token
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Gen       uint64    `json:"gen,omitempty"` // the member's session generation when issued
}

// PutToken stores a token of an existing member under key. Errors: ENOTFOUND.
func (s *Store) PutToken(ctx context.Context, key [32]byte, t Token) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := getMember(tx, t.MemberID)
		if err != nil {
			return err
		}
		t.Gen = r.SessionGen
		return putJSON(tx.Bucket(bTokens), key[:], t)
	})
}

// TokenByKey returns the token stored under key. An expired token counts as
// absent. Errors: EUNAUTHORIZED.
func (s *Store) TokenByKey(ctx context.Context, key [32]byte) (Token, error) {
	var t Token
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bTokens).Get(key[:])
		if v == nil {
			return fablab.Errorf(fablab.EUNAUTHORIZED, "the session has ended; log in again")
		}
		return getJSONBytes(v, &t)
	})
	if err == nil && !s.now().Before(t.ExpiresAt) {
		err = fablab.Errorf(fablab.EUNAUTHORIZED, "the session has expired; log in again")
	}
	return t, err
}

// DeleteToken removes a token (logout). Deleting an absent token is not an error.
func (s *Store) DeleteToken(ctx context.Context, key [32]byte) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bTokens).Delete(key[:])
	})
}

// Authenticate returns the token stored under key and its member, in one read.
// An expired token counts as absent. Errors: EUNAUTHORIZED.
func (s *Store) Authenticate(ctx context.Context, key [32]byte) (Token, fablab.Member, error) {
	var (
		t Token
		r memberRecord
	)
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bTokens).Get(key[:])
		if v == nil {
			return fablab.Errorf(fablab.EUNAUTHORIZED, "the session has ended; log in again")
		}
		var err error
		if t, err = s.tokenCache.get(key, v); err != nil {
			return err
		}
		if r, err = s.readMember(tx, t.MemberID); fablab.ErrorCode(err) == fablab.ENOTFOUND {
			return fablab.Errorf(fablab.EUNAUTHORIZED, "the account of this session no longer exists")
		}
		if err == nil && t.Gen != r.SessionGen {
			return fablab.Errorf(fablab.EUNAUTHORIZED, "the session was ended by a password change or a suspension; log in again")
		}
		return err
	})
	if err == nil && !s.now().Before(t.ExpiresAt) {
		// Expired tokens are removed as they are met.
		if derr := s.DeleteToken(ctx, key); derr != nil {
			return t, r.Member, derr
		}
		err = fablab.Errorf(fablab.EUNAUTHORIZED, "the session has expired; log in again")
	}
	return t, r.Member, err
}

// PasswordReset is a one-time password reset, stored under the SHA-256 of
// its token. It is void once used, once expired, and once the member's
// password changes or the member is suspended (session generation).
type PasswordReset struct {
	MemberID  fablab.ID `json:"member_id"`
	CreatedBy fablab.ID `json:"created_by,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	Gen       uint64    `json:"gen,omitempty"`
}

// PutPasswordReset stores a reset for an existing member. Errors: ENOTFOUND.
func (s *Store) PutPasswordReset(ctx context.Context, key [32]byte, r PasswordReset) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		m, err := getMember(tx, r.MemberID)
		if err != nil {
			return err
		}
		r.Gen = m.SessionGen
		return putJSON(tx.Bucket(bResets), key[:], r)
	})
}

// UsePasswordReset sets the password hash of the member a valid reset
// belongs to, and voids the reset, in one transaction; the member's sessions
// end as with any new password. Errors: EUNAUTHORIZED (unknown, used,
// expired or void reset; the member suspended).
func (s *Store) UsePasswordReset(ctx context.Context, key [32]byte, hash string) (fablab.Member, error) {
	var out fablab.Member
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		invalid := fablab.Errorf(fablab.EUNAUTHORIZED, "this reset link is unknown, used or expired; ask the lab's staff for a new one")
		var r PasswordReset
		v := tx.Bucket(bResets).Get(key[:])
		if v == nil {
			return invalid
		}
		if err := getJSONBytes(v, &r); err != nil {
			return err
		}
		if err := tx.Bucket(bResets).Delete(key[:]); err != nil {
			return err
		}
		m, err := getMember(tx, r.MemberID)
		if fablab.ErrorCode(err) == fablab.ENOTFOUND || err == nil && (m.SessionGen != r.Gen || !s.now().Before(r.ExpiresAt) || m.Status != fablab.StatusActive) {
			// Voided here, but the deletion must stick: commit, then refuse.
			out = fablab.Member{}
			return nil
		}
		if err != nil {
			return err
		}
		out = m.Member
		out.PasswordHash = hash
		return putMember(tx, out, m.SessionGen+1)
	})
	if err == nil && out.ID == 0 {
		err = fablab.Errorf(fablab.EUNAUTHORIZED, "this reset link is unknown, used or expired; ask the lab's staff for a new one")
	}
	return out, err
}

// PasswordResetExists reports whether a reset is stored under key (used or
// not yet), so that a request for an unknown token costs no password hashing.
func (s *Store) PasswordResetExists(ctx context.Context, key [32]byte) (bool, error) {
	var ok bool
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		ok = tx.Bucket(bResets).Get(key[:]) != nil
		return nil
	})
	return ok, err
}
