package httpapi

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/ical"
)

// A maker's calendar feed: a secret URL (/feed/<token>.ics) their phone's
// calendar polls without logging in. The token is the only credential, so
// it is shown once, stored hashed, never logged (routes are logged by their
// template, /feed/:token), and a new one replaces the old.

const (
	// feedPast and feedAhead bound the bookings a feed shows, around now.
	feedPast  = 90 * 24 * time.Hour
	feedAhead = 365 * 24 * time.Hour
	// feedLimit bounds the events of one feed, and so the work of a
	// request no login guards.
	feedLimit = 1000
	// feedCacheControl lets the phone (not a shared cache: the URL is a
	// secret) keep a copy for a few minutes; calendar apps poll far less
	// often anyway.
	feedCacheControl = "private, max-age=300"
	// feedSuffix ends every feed URL: calendar apps recognise the type by it.
	feedSuffix = ".ics"
)

// calendarFeedCreated is the answer to POST /me/calendar-feed: the secret
// URL, shown this once.
type calendarFeedCreated struct {
	URL       string    `json:"url"`
	CreatedAt time.Time `json:"created_at"`
}

// calendarFeedStatus is the answer to GET /me/calendar-feed: whether the
// member has a feed, never its URL.
type calendarFeedStatus struct {
	Active    bool       `json:"active"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
}

// baseURL is where people open the server: the configured public URL, or
// else the scheme and host this request came to.
func (s *Server) baseURL(c *gin.Context) string {
	if s.publicURL != "" {
		return strings.TrimSuffix(s.publicURL, "/")
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}

func (s *Server) createCalendarFeed(c *gin.Context) {
	me := member(c)
	token := auth.NewToken()
	f, err := s.store.PutCalendarFeed(c.Request.Context(), me.ID, auth.TokenKey(token))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("calendar feed created", "member", me.ID)
	c.JSON(http.StatusCreated, calendarFeedCreated{URL: s.baseURL(c) + "/feed/" + token + feedSuffix, CreatedAt: f.CreatedAt})
}

func (s *Server) getCalendarFeed(c *gin.Context) {
	f, err := s.store.MemberCalendarFeed(c.Request.Context(), member(c).ID)
	switch {
	case fablab.ErrorCode(err) == fablab.ENOTFOUND:
		c.JSON(http.StatusOK, calendarFeedStatus{})
	case err != nil:
		s.fail(c, err)
	default:
		c.JSON(http.StatusOK, calendarFeedStatus{Active: true, CreatedAt: &f.CreatedAt})
	}
}

func (s *Server) revokeCalendarFeed(c *gin.Context) {
	if err := s.store.RevokeCalendarFeed(c.Request.Context(), member(c).ID); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// calendarFeed serves GET /feed/<token>.ics: the member's bookings from
// feedPast ago to feedAhead from now as an iCalendar document. Cancelled
// bookings stay in it, as CANCELLED, so that the phone removes them.
func (s *Server) calendarFeed(c *gin.Context) {
	token, ok := strings.CutSuffix(c.Param("token"), feedSuffix)
	if !ok || token == "" {
		s.fail(c, fablab.Errorf(fablab.ENOTFOUND, "no such calendar feed; feed addresses end in %s", feedSuffix))
		return
	}
	now := s.now()
	fc, err := s.store.CalendarFeedContents(c.Request.Context(), auth.TokenKey(token),
		bolt.FeedWindow{From: now.Add(-feedPast), Now: now, To: now.Add(feedAhead), Limit: feedLimit})
	if err != nil {
		s.fail(c, err)
		return
	}
	base := s.baseURL(c)
	host := "fabgate"
	if u, err := url.Parse(base); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	cal := ical.Calendar{Name: fc.Settings.Name + " — " + fc.Member.Name, TimeZone: fc.Settings.TimeZone}
	stamp := now.UTC().Truncate(time.Second)
	for _, b := range fc.Bookings {
		cal.Events = append(cal.Events, feedEvent(b, fc, base, host, stamp))
	}
	c.Header("Cache-Control", feedCacheControl)
	c.Data(http.StatusOK, ical.ContentType(""), ical.Encode(cal))
}

// feedEvent is one booking as a calendar event. Its UID stays the same
// through every change of the booking, and a booking that left the
// confirmed state counts one revision (SEQUENCE 1), so that calendars
// replace the event they hold.
func feedEvent(b fablab.Booking, fc bolt.FeedContents, base, host string, stamp time.Time) ical.Event {
	m, ok := fc.Machines[b.MachineID]
	name := m.Name
	if !ok {
		name = "Machine " + b.MachineID.String()
	}
	e := ical.Event{
		UID:      "booking-" + b.ID.String() + "@" + host,
		Stamp:    stamp,
		Start:    b.Start,
		End:      b.End,
		Summary:  name,
		Location: fc.Settings.Name,
		URL:      base + "/machines/" + b.MachineID.String(),
		Status:   ical.Confirmed,
	}
	switch b.State {
	case fablab.BookingCancelled:
		e.Status, e.Sequence, e.Description = ical.Cancelled, 1, "Cancelled."
	case fablab.BookingNoShow:
		e.Sequence, e.Description = 1, "Not used: the booking was marked as a no-show."
	case fablab.BookingCompleted:
		e.Sequence, e.Description = 1, "Completed."
	}
	return e
}
