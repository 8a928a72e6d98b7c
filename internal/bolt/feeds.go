package bolt

import (
	"bytes"
	"context"
	"encoding/hex"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

// A member's calendar feed is a secret URL a phone's calendar polls
// without logging in. Like login tokens, only the SHA-256 of its token is
// stored (feeds/), so a copy of the data file opens no feed; feeds_member/
// holds the member's one current key, so that a new token replaces the old
// one and a revocation finds what to delete.

// feedRecord is the value of feeds_member/: the member's current feed.
type feedRecord struct {
	Key       string    `json:"key"` // hex SHA-256 of the token: the key in feeds/
	CreatedAt time.Time `json:"created_at"`
}

// CalendarFeed is a member's current calendar feed, without its token
// (which only its owner was shown, once).
type CalendarFeed struct {
	CreatedAt time.Time
}

// getFeed returns the member's feed record; ok is false when there is none.
func getFeed(tx *bbolt.Tx, member fablab.ID) (feedRecord, bool, error) {
	var r feedRecord
	v := tx.Bucket(bFeedsMember).Get(itob(member))
	if v == nil {
		return r, false, nil
	}
	return r, true, getJSONBytes(v, &r)
}

// deleteFeed removes the member's feed, if any, from both buckets.
func deleteFeed(tx *bbolt.Tx, member fablab.ID) error {
	r, ok, err := getFeed(tx, member)
	if err != nil || !ok {
		return err
	}
	key, err := hex.DecodeString(r.Key)
	if err != nil {
		return fablab.Internal(err, "decode stored feed key of member %s", member)
	}
	if err := tx.Bucket(bFeeds).Delete(key); err != nil {
		return err
	}
	return tx.Bucket(bFeedsMember).Delete(itob(member))
}

// PutCalendarFeed makes key (the SHA-256 of a new token) the member's
// calendar feed, replacing the one the member had: the old URL stops
// working in the same transaction. Errors: ENOTFOUND (member), EFORBIDDEN
// (member suspended).
func (s *Store) PutCalendarFeed(ctx context.Context, member fablab.ID, key [32]byte) (CalendarFeed, error) {
	var out CalendarFeed
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		m, err := getMember(tx, member)
		if err != nil {
			return err
		}
		if m.Status != fablab.StatusActive {
			return fablab.Errorf(fablab.EFORBIDDEN, "this account is suspended; ask the lab's staff")
		}
		if err := deleteFeed(tx, member); err != nil {
			return err
		}
		out.CreatedAt = s.now().UTC().Truncate(time.Second)
		if err := tx.Bucket(bFeeds).Put(key[:], itob(member)); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bFeedsMember), itob(member), feedRecord{Key: hex.EncodeToString(key[:]), CreatedAt: out.CreatedAt})
	})
	return out, err
}

// MemberCalendarFeed returns the member's current calendar feed.
// Errors: ENOTFOUND (no feed).
func (s *Store) MemberCalendarFeed(ctx context.Context, member fablab.ID) (CalendarFeed, error) {
	var out CalendarFeed
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		r, ok, err := getFeed(tx, member)
		if err != nil {
			return err
		}
		if !ok {
			return fablab.Errorf(fablab.ENOTFOUND, "member %s has no calendar feed", member)
		}
		out.CreatedAt = r.CreatedAt
		return nil
	})
	return out, err
}

// RevokeCalendarFeed deletes the member's calendar feed; revoking an absent
// feed is not an error.
func (s *Store) RevokeCalendarFeed(ctx context.Context, member fablab.ID) error {
	return s.update(ctx, func(tx *bbolt.Tx) error { return deleteFeed(tx, member) })
}

// FeedWindow bounds what a calendar feed shows: the bookings starting in
// [From, To), at most Limit of them. When there are more, those starting
// at or after Now come first (a phone needs what is ahead more than what
// is past), then the latest of those before it.
type FeedWindow struct {
	From, Now, To time.Time
	Limit         int
}

// FeedContents is what a calendar feed shows, read in one transaction.
type FeedContents struct {
	Member   fablab.Member // without its password hash
	Settings fablab.Settings
	Bookings []fablab.Booking // by start
	// Machines holds the machine of each booking (a machine that no longer
	// exists is absent).
	Machines map[fablab.ID]fablab.Machine
}

// CalendarFeedContents returns the feed stored under key (the SHA-256 of its
// token): its member, the lab settings and the member's bookings in w, read
// through the member's booking index (w.Limit entries at most). The
// member's status is checked here, at every read, so a suspended member's
// feed answers nothing even though UpdateMember also deletes it.
// Errors: ENOTFOUND (unknown or revoked token, member gone or suspended).
func (s *Store) CalendarFeedContents(ctx context.Context, key [32]byte, w FeedWindow) (FeedContents, error) {
	var out FeedContents
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		unknown := fablab.Errorf(fablab.ENOTFOUND, "no such calendar feed; it may have been revoked or replaced")
		v := tx.Bucket(bFeeds).Get(key[:])
		if len(v) != 8 {
			return unknown
		}
		r, err := s.readMember(tx, btoi(v))
		if fablab.ErrorCode(err) == fablab.ENOTFOUND {
			return unknown
		}
		if err != nil {
			return err
		}
		if r.Status != fablab.StatusActive {
			return unknown
		}
		out.Member = r.Member
		out.Member.PasswordHash = ""
		if out.Settings, err = s.readSettings(tx); err != nil {
			return err
		}
		ids, err := feedBookingIDs(tx, out.Member.ID, w)
		if err != nil {
			return err
		}
		out.Bookings = make([]fablab.Booking, 0, len(ids))
		out.Machines = map[fablab.ID]fablab.Machine{}
		for _, id := range ids {
			b, err := getBooking(tx, id)
			if err != nil {
				return err
			}
			out.Bookings = append(out.Bookings, b)
			if _, seen := out.Machines[b.MachineID]; seen {
				continue
			}
			m, err := s.readMachine(tx, b.MachineID)
			switch {
			case err == nil:
				out.Machines[b.MachineID] = m
			case fablab.ErrorCode(err) != fablab.ENOTFOUND:
				return err
			}
		}
		return nil
	})
	return out, err
}

// feedBookingIDs reads the member's booking index for w: forward from
// w.Now to w.To, then backward from w.Now to w.From, w.Limit entries in
// all, and returns the ids by start.
func feedBookingIDs(tx *bbolt.Tx, member fablab.ID, w FeedWindow) ([]fablab.ID, error) {
	if w.Limit <= 0 {
		return nil, nil
	}
	now := w.Now
	if now.Before(w.From) {
		now = w.From
	}
	if now.After(w.To) {
		now = w.To
	}
	prefix := itob(member)
	split, lo, hi := cat(prefix, tkey(now)), cat(prefix, tkey(w.From)), cat(prefix, tkey(w.To))
	c := tx.Bucket(bBookingsMember).Cursor()
	var ahead, past []fablab.ID
	for k, _ := c.Seek(split); k != nil && bytes.Compare(k, hi) < 0 && len(ahead) < w.Limit; k, _ = c.Next() {
		ahead = append(ahead, btoi(k[16:24]))
	}
	for k, _ := lastBefore(c, split); k != nil && bytes.Compare(k, lo) >= 0 && len(ahead)+len(past) < w.Limit; k, _ = c.Prev() {
		past = append(past, btoi(k[16:24]))
	}
	out := make([]fablab.ID, 0, len(past)+len(ahead))
	for i := len(past) - 1; i >= 0; i-- {
		out = append(out, past[i])
	}
	return append(out, ahead...), nil
}
