package httpapi

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/mail"
)

// Mailer mails members. Its methods queue the message and return at once:
// no request waits on a mail server, and a failure is logged by the mailer.
type Mailer interface {
	Invitation(ctx context.Context, m fablab.Member, link string, expires time.Time)
	PasswordReset(ctx context.Context, m fablab.Member, link string, expires time.Time)
	BookingConfirmed(ctx context.Context, b fablab.Booking)
	BookingCancelled(ctx context.Context, b fablab.Booking)
	// Outbox returns the messages kept in the server, newest first; ok is
	// false when mail goes out by SMTP.
	Outbox() (msgs []mail.Message, ok bool)
}

// invitationTTL is how long the link mailed to a new member stays valid: a
// week, as a new member may not read their mail the same day.
const invitationTTL = 7 * 24 * time.Hour

// forgotTTL is how long a link asked for with "forgot my password" stays
// valid: it was asked for just now, by someone at a screen.
const forgotTTL = 2 * time.Hour

// resetLink is the page where a reset token sets a password.
func (s *Server) resetLink(token string) string {
	return s.publicURL + "/reset?token=" + url.QueryEscape(token)
}

// invite gives a member created without a password a reset token valid a
// week and mails them the link. Failures are logged: the member exists,
// and staff can still issue a link (POST /members/{id}/password-reset).
func (s *Server) invite(ctx context.Context, m fablab.Member, by fablab.ID) {
	if s.mail == nil {
		return
	}
	token := auth.NewToken()
	exp := s.now().Add(invitationTTL).UTC().Truncate(time.Second)
	if err := s.store.PutPasswordReset(ctx, auth.TokenKey(token), bolt.PasswordReset{MemberID: m.ID, CreatedBy: by, ExpiresAt: exp}); err != nil {
		s.log.Error("invitation not sent", "member", m.ID, "err", err)
		return
	}
	s.mail.Invitation(ctx, m, s.resetLink(token), exp)
	s.log.Info("invitation mailed", "member", m.ID, "by", by)
}

type forgotPasswordRequest struct {
	Email string `json:"email"`
}

// forgotAnswer is the one answer of POST /auth/forgot-password, whether the
// address belongs to an account or not.
var forgotAnswer = gin.H{"status": "accepted", "detail": "if an active account has this address, a link to choose a new password has been mailed to it"}

// forgotPassword mails a reset link to the address of an active account.
// It answers the same whether the account exists or not, so that it tells
// nobody which addresses have accounts; it is throttled per client address
// and per account, so that it cannot be used to flood someone's mailbox.
func (s *Server) forgotPassword(c *gin.Context) {
	ctx := c.Request.Context()
	var req forgotPasswordRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	account := fablab.NormalizeEmail(req.Email)
	if account == "" || len(account) > 254 {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "email is required (at most 254 bytes): the address of your account"))
		return
	}
	for _, t := range []struct {
		th               *auth.Throttle
		account, address string
	}{{s.forgotByAddr, "", clientKey(c.ClientIP())}, {s.forgotByAccount, account, ""}} {
		finish, wait, err := t.th.Begin(t.account, t.address)
		if err != nil {
			c.Header("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			s.fail(c, fablab.Errorf(fablab.ETOOMANY, "too many password reset requests; try again in %d minutes", int(math.Ceil(wait.Minutes()))))
			return
		}
		finish(false) // every request counts, sent or not
	}
	m, err := s.store.MemberByEmail(ctx, account)
	switch {
	case fablab.ErrorCode(err) == fablab.ENOTFOUND:
		s.log.Info("password reset asked for an unknown address", "addr", clientKey(c.ClientIP()))
	case err != nil:
		s.fail(c, err)
		return
	case m.Status != fablab.StatusActive:
		s.log.Info("password reset asked for a suspended account", "member", m.ID)
	case s.mail == nil:
		s.log.Warn("password reset asked but mail is off", "member", m.ID)
	default:
		token := auth.NewToken()
		exp := s.now().Add(forgotTTL).UTC().Truncate(time.Second)
		if err := s.store.PutPasswordReset(ctx, auth.TokenKey(token), bolt.PasswordReset{MemberID: m.ID, ExpiresAt: exp}); err != nil {
			s.fail(c, err)
			return
		}
		s.mail.PasswordReset(ctx, m, s.resetLink(token), exp)
		s.log.Info("password reset mailed", "member", m.ID)
	}
	c.JSON(http.StatusAccepted, forgotAnswer)
}

// outboxMessage is a message of the outbox as the API shows it.
type outboxMessage struct {
	To          string    `json:"to"`
	ToName      string    `json:"to_name,omitempty"`
	Subject     string    `json:"subject"`
	Date        time.Time `json:"date"`
	Text        string    `json:"text"`
	Attachments []string  `json:"attachments"`
}

// outbox lists the mail kept in the server (outbox:), newest first. It
// holds reset links: staff see the mail of makers and their own, admins
// all of it (as staff manage makers only, and a reset link to an admin's
// account would make staff admins).
func (s *Server) outbox(c *gin.Context) {
	var msgs []mail.Message
	ok := false
	if s.mail != nil {
		msgs, ok = s.mail.Outbox()
	}
	if !ok {
		s.fail(c, fablab.Errorf(fablab.ENOTFOUND, "there is no outbox: mail goes out through the SMTP server set in smtp_url (set smtp_url to outbox: to keep mail here)"))
		return
	}
	me := member(c)
	out := make([]outboxMessage, 0, len(msgs))
	for _, m := range msgs {
		if me.Role != fablab.RoleAdmin && m.MemberRole != fablab.RoleMaker && m.MemberID != me.ID {
			continue
		}
		names := make([]string, 0, len(m.Attachments))
		for _, a := range m.Attachments {
			names = append(names, a.Name)
		}
		out = append(out, outboxMessage{To: m.To, ToName: m.ToName, Subject: m.Subject, Date: m.Date, Text: m.Text, Attachments: names})
	}
	c.JSON(http.StatusOK, out)
}
