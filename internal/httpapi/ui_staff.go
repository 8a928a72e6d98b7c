package httpapi

import (
	"context"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// staffPages registers the pages of the staff area (members with fablab.RoleStaff
// or above; the group already checks it).
func (s *Server) staffPages(g *gin.RouterGroup) {
	g.GET("/staff", s.cached(s.dashboardPage))
	g.GET("/staff/members", s.cached(s.membersPage))
	g.GET("/staff/members/:id", s.cached(s.memberPage))
	g.GET("/staff/trainings", s.cached(s.trainingsPage))
	g.GET("/staff/audit", s.cached(s.auditPage))
}

// denyReasons are the reasons a tap is refused (the access engine's
// wire.Reason* codes); the pages say each in words (message reason_<code>).
var denyReasons = []string{
	wire.ReasonUnknownBadge, wire.ReasonMemberInactive, wire.ReasonMachineUnavailable,
	wire.ReasonTrainingRequired, wire.ReasonInUse, wire.ReasonBookedSoon, wire.ReasonBookedByOther,
	wire.ReasonNoMachine, wire.ReasonServerError,
}

// baseStatus is the status st turns back to when the machine's session
// ends: machineStatuses' rule without the session.
func baseStatus(st machineStatus) string {
	switch {
	case st.MachineState == fablab.MachineMaintenance || st.MaintenanceUntil != nil:
		return statusMaintenance
	case st.DeviceID != "" && !st.DeviceOnline:
		return statusOffline
	}
	return statusAvailable
}

// names looks members and machines up once per page.
type names struct {
	s        *Server
	ctx      context.Context
	members  map[fablab.ID]string
	machines map[fablab.ID]fablab.Machine
}

func (s *Server) names(ctx context.Context) (*names, error) {
	n := &names{s: s, ctx: ctx, members: map[fablab.ID]string{}, machines: map[fablab.ID]fablab.Machine{}}
	ms, err := s.store.Machines(ctx, 0, 10_000)
	if err != nil {
		return nil, err
	}
	for _, m := range ms.Items {
		n.machines[m.ID] = m
	}
	return n, nil
}

// member is a member's name, "" for none or one that no longer exists.
func (n *names) member(id fablab.ID) string {
	if id == 0 {
		return ""
	}
	if name, ok := n.members[id]; ok {
		return name
	}
	m, err := n.s.store.Member(n.ctx, id)
	if err == nil {
		n.members[id] = m.Name
	}
	return m.Name
}

// preload reads the names of ids in one go.
func (n *names) preload(ids []fablab.ID) error {
	got, err := n.s.store.MemberNames(n.ctx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		n.members[id] = got[id] // "" for one that no longer exists
	}
	return nil
}

// machine is a machine's name, "" for none.
func (n *names) machine(id fablab.ID) string { return n.machines[id].Name }

// dashMachine is one machine's live state on the dashboard.
type dashMachine struct {
	Machine fablab.Machine
	State   string // available, in_use, maintenance, offline
	// BaseState is the state without the session: what the machine turns
	// back to when its session ends.
	BaseState string
	Session   *fablab.Session
	User      string // who uses it, when in use
	// Kind and StateText are in the page's language.
	Kind, StateText string
}

type dashBooking struct {
	Booking fablab.Booking
	Machine string
	Member  string
	// Start, End (lab times) and State in the page's language; the ISO
	// forms for <time datetime>.
	Start, End, State, StartISO, EndISO string
}

type dashSession struct {
	Session fablab.Session
	Machine string
	Member  string
	// Started, Until (lab times) and Confirm, in the page's language.
	Started, Until, StartedISO, UntilISO, Confirm string
}

type dashDevice struct {
	Device   fablab.Device
	State    fablab.DeviceState
	Machine  string
	Disabled bool
}

type dashTap struct {
	Event   fablab.AuditEvent
	Machine string
	Member  string
	// At and Reason in the page's language.
	At, AtISO, Reason string
}

type dashUnknown struct {
	Tap     fablab.UnknownTap
	Machine string
}

// dashboardData is what the staff dashboard shows.
type dashboardData struct {
	Machines []dashMachine
	Day      time.Time
	Bookings []dashBooking
	Sessions []dashSession
	Offline  []dashDevice
	Denied   []dashTap
	Unknown  []dashUnknown
	// Members fill the enrol forms' member lists before a search.
	Members []fablab.Member
	// Devices are the devices bound to a machine, for the demo's tap form.
	Devices  []dashDevice
	Simulate bool
	// Live: the server streams live events (the page follows them).
	Live    bool
	Reasons []string
	// Cards and BookingRows are the machine cards and the rows of
	// today's bookings, written once in Go (see htmlRows).
	Cards, BookingRows template.HTML
}

// dashboardPage shows the lab now: every machine's live state, today's
// bookings, open sessions, offline devices, refused taps and unknown
// badges. The page then follows the live event stream.
func (s *Server) dashboardPage(c *gin.Context) {
	v, err := s.newView(c, "dashboard", "dashboard_title", nil)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	d, err := s.dashboard(c.Request.Context(), member(c))
	if err != nil {
		s.pageFail(c, err)
		return
	}
	d.texts(v)
	v.Data = d
	s.write(c, http.StatusOK, v)
}

// texts puts the dashboard's words and times in the page's language once,
// so that the template only copies them (a day of a big lab is hundreds of
// rows).
func (d *dashboardData) texts(v *view) {
	for i := range d.Machines {
		m := &d.Machines[i]
		m.Kind, m.StateText = v.Kind(m.Machine.Kind), v.TOr("state_"+m.State, m.State)
	}
	states := map[string]string{}
	for i := range d.Bookings {
		b := &d.Bookings[i]
		st, ok := states[b.Booking.State]
		if !ok {
			st = v.TOr("staff_booking_"+b.Booking.State, b.Booking.State)
			states[b.Booking.State] = st
		}
		b.Start, b.End, b.State = v.Time(b.Booking.Start), v.Time(b.Booking.End), st
		b.StartISO, b.EndISO = v.ISO(b.Booking.Start), v.ISO(b.Booking.End)
	}
	for i := range d.Sessions {
		ss := &d.Sessions[i]
		ss.Started, ss.Until = v.Time(ss.Session.Started), v.Time(ss.Session.Until)
		ss.StartedISO, ss.UntilISO = v.ISO(ss.Session.Started), v.ISO(ss.Session.Until)
		ss.Confirm = v.T("dashboard_end_confirm", "Machine", ss.Machine, "Member", ss.Member)
	}
	for i := range d.Denied {
		t := &d.Denied[i]
		t.At, t.AtISO = v.Time(t.Event.At), v.ISO(t.Event.At)
		t.Reason = v.TOr("staff_reason_"+t.Event.Reason, t.Event.Reason)
	}
	d.Cards, d.BookingRows = d.machineCards(v), d.bookingRows(v)
}

func (s *Server) dashboard(ctx context.Context, me fablab.Member) (*dashboardData, error) {
	n, err := s.names(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.store.Settings(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	loc := st.Location()
	d := &dashboardData{Simulate: s.simulateTaps && s.access != nil, Live: s.hub != nil, Reasons: denyReasons}
	day := fablab.DateOf(now.In(loc))
	dayStart, dayEnd := day.In(loc), day.AddDays(1).In(loc)
	d.Day = dayStart

	open, err := s.store.OpenSessions(ctx)
	if err != nil {
		return nil, err
	}
	onMachine := map[fablab.ID]*fablab.Session{}
	for i := range open {
		ss := &open[i]
		onMachine[ss.MachineID] = ss
		d.Sessions = append(d.Sessions, dashSession{Session: *ss, Machine: n.machine(ss.MachineID), Member: n.member(ss.MemberID)})
	}
	sort.SliceStable(d.Sessions, func(i, j int) bool { return d.Sessions[i].Session.Started.Before(d.Sessions[j].Session.Started) })

	var states map[string]fablab.DeviceState
	if s.access != nil {
		states = s.access.DeviceStates()
	}
	devs, err := s.store.Devices(ctx)
	if err != nil {
		return nil, err
	}
	for _, dev := range devs {
		st := states[dev.ID]
		dd := dashDevice{Device: dev, State: st, Machine: n.machine(dev.MachineID), Disabled: dev.Disabled}
		if !st.Online { // without the access side running, no device is reached
			d.Offline = append(d.Offline, dd)
		}
		if dev.MachineID != 0 && !dev.Disabled {
			d.Devices = append(d.Devices, dd)
		}
	}
	sort.Slice(d.Devices, func(i, j int) bool { return d.Devices[i].Machine < d.Devices[j].Machine })

	// The live states follow the one rule of GET /machines/status.
	statuses, err := s.machineStatuses(ctx, me)
	if err != nil {
		return nil, err
	}
	for _, st := range statuses {
		m, ok := n.machines[st.MachineID]
		if !ok || st.Status == statusRetired {
			continue
		}
		dm := dashMachine{Machine: m, State: st.Status, BaseState: baseStatus(st)}
		if ss := onMachine[m.ID]; ss != nil && st.Status == statusInUse {
			dm.Session, dm.User = ss, n.member(ss.MemberID)
		}
		d.Machines = append(d.Machines, dm)
	}
	bs, err := s.store.OccupyingBookings(ctx, dayStart, dayEnd)
	if err != nil {
		return nil, err
	}
	ids := make([]fablab.ID, len(bs))
	for i, b := range bs {
		ids[i] = b.MemberID
	}
	if err := n.preload(ids); err != nil {
		return nil, err
	}
	for _, b := range bs {
		if m := n.machines[b.MachineID]; m.State != fablab.MachineRetired {
			d.Bookings = append(d.Bookings, dashBooking{Booking: b, Machine: m.Name, Member: n.member(b.MemberID)})
		}
	}
	sort.Slice(d.Machines, func(i, j int) bool { return d.Machines[i].Machine.Name < d.Machines[j].Machine.Name })
	sort.SliceStable(d.Bookings, func(i, j int) bool { return d.Bookings[i].Booking.Start.Before(d.Bookings[j].Booking.Start) })

	denied, err := s.store.AuditEvents(ctx, bolt.AuditFilter{From: now.Add(-24 * time.Hour), To: now.Add(time.Minute), Kind: fablab.AuditTap, Action: "denied", Limit: 20})
	if err != nil {
		return nil, err
	}
	for _, ev := range denied {
		d.Denied = append(d.Denied, dashTap{Event: ev, Machine: n.machine(ev.MachineID), Member: n.member(ev.MemberID)})
	}

	unknown, err := s.store.UnknownTaps(ctx)
	if err != nil {
		return nil, err
	}
	byDevice := map[string]string{}
	for _, dev := range devs {
		byDevice[dev.ID] = n.machine(dev.MachineID)
	}
	seen := map[string]bool{}
	// Newest first, each badge once: the enrol form names the badge by its hash.
	sort.SliceStable(unknown, func(i, j int) bool { return unknown[i].At.After(unknown[j].At) })
	for _, t := range unknown {
		if seen[t.Hash] {
			continue
		}
		seen[t.Hash] = true
		d.Unknown = append(d.Unknown, dashUnknown{Tap: t, Machine: byDevice[t.DeviceID]})
	}
	if len(d.Unknown) > 0 {
		ms, err := s.store.Members(ctx, 0, 50)
		if err != nil {
			return nil, err
		}
		d.Members = ms.Items
	}
	return d, nil
}

// ---- members ----

const membersPerPage = 50

// membersData is what the members page shows.
type membersData struct {
	Q       string
	After   fablab.ID
	Next    fablab.ID
	Members []memberRow
	Orgs    []fablab.Organisation
	Groups  []fablab.TariffGroup
	// Roles are the roles the viewer may give (admins only give staff and admin).
	Roles []fablab.Role
	// Rows are the table's rows, written once in Go (see htmlRows).
	Rows template.HTML
}

type memberRow struct {
	Member       fablab.Member
	Organisation string
	// Role and Status in the page's language.
	Role, Status string
}

// membersPage lists members one page at a time, by id, optionally those
// whose name or email contains q, with the forms to create a member and
// an organisation.
func (s *Server) membersPage(c *gin.Context) {
	ctx := c.Request.Context()
	after, err := queryID(c, "after")
	if err != nil {
		s.pageFail(c, err)
		return
	}
	d := membersData{Q: c.Query("q"), After: after}
	if len(d.Q) > 200 {
		d.Q = d.Q[:200]
	}
	p, err := s.store.SearchMembers(ctx, d.Q, after, membersPerPage)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	d.Next = p.Next
	orgs, err := s.orgs(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	orgName := map[fablab.ID]string{}
	for _, o := range orgs {
		orgName[o.ID] = o.Name
	}
	for _, m := range p.Items {
		d.Members = append(d.Members, memberRow{Member: m, Organisation: orgName[m.OrganisationID]})
	}
	if d.Groups, err = s.store.TariffGroups(ctx); err != nil {
		s.pageFail(c, err)
		return
	}
	d.Orgs = orgs
	d.Roles = grantableRoles(member(c))
	v, err := s.newView(c, "members", "members_title", d)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	words := map[string]string{}
	word := func(id string) string {
		w, ok := words[id]
		if !ok {
			w = v.TOr(id, id[strings.LastIndexByte(id, '_')+1:])
			words[id] = w
		}
		return w
	}
	for i := range d.Members {
		r := &d.Members[i]
		r.Role, r.Status = word("staff_role_"+string(r.Member.Role)), word("staff_status_"+r.Member.Status)
	}
	d.Rows = d.memberRows(v)
	v.Data = d
	s.write(c, http.StatusOK, v)
}

// grantableRoles are the roles me may give: admins give any, staff only maker
// (the API's authorize refuses the others; the pages only offer what works).
func grantableRoles(me fablab.Member) []fablab.Role {
	if me.Role == fablab.RoleAdmin {
		return []fablab.Role{fablab.RoleMaker, fablab.RoleStaff, fablab.RoleAdmin}
	}
	return []fablab.Role{fablab.RoleMaker}
}

// orgs lists every organisation, by name.
func (s *Server) orgs(ctx context.Context) ([]fablab.Organisation, error) {
	p, err := s.store.Organisations(ctx, 0, 100_000)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(p.Items, func(i, j int) bool { return p.Items[i].Name < p.Items[j].Name })
	return p.Items, nil
}

// memberData is what a member's page shows.
type memberData struct {
	Member       fablab.Member
	Organisation string
	// CanEdit: the viewer may change this account (staff act on makers).
	CanEdit        bool
	Badges         []fablab.Badge
	Qualifications []qualRow
	Trainings      []fablab.Training
	Orgs           []fablab.Organisation
	Groups         []fablab.TariffGroup
	Roles          []fablab.Role
}

type qualRow struct {
	Q        fablab.Qualification
	Training string
	Valid    bool
}

// memberPage shows one member with the forms staff use on them: status,
// tariff group, organisation, role (admins), badges, qualifications and a
// password reset link.
func (s *Server) memberPage(c *gin.Context) {
	ctx := c.Request.Context()
	id, err := pathID(c, "id")
	if err != nil {
		s.pageFail(c, err)
		return
	}
	m, err := s.store.Member(ctx, id)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	me := member(c)
	d := memberData{Member: m, CanEdit: authorize(c, &m, nil) == nil, Roles: grantableRoles(me)}
	if d.Badges, err = s.store.Badges(ctx, id); err != nil {
		s.pageFail(c, err)
		return
	}
	trainings, err := s.trainingsByID(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	qs, err := s.store.Qualifications(ctx, id)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	now := s.now()
	for _, q := range qs {
		d.Qualifications = append(d.Qualifications, qualRow{Q: q, Training: trainings[q.TrainingID].Name, Valid: q.ValidAt(now)})
	}
	for _, t := range trainings {
		d.Trainings = append(d.Trainings, t)
	}
	sort.Slice(d.Trainings, func(i, j int) bool { return d.Trainings[i].Name < d.Trainings[j].Name })
	if d.Orgs, err = s.orgs(ctx); err != nil {
		s.pageFail(c, err)
		return
	}
	for _, o := range d.Orgs {
		if o.ID == m.OrganisationID {
			d.Organisation = o.Name
		}
	}
	if d.Groups, err = s.store.TariffGroups(ctx); err != nil {
		s.pageFail(c, err)
		return
	}
	v, err := s.newView(c, "member", "member_title", d)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	v.Title = m.Name
	s.write(c, http.StatusOK, v)
}

// ---- trainings ----

type trainingRow struct {
	Training fablab.Training
	Machines []string // the machines that require it
}

// trainingsPage lists the trainings, the machines that need each, and a
// form to create one.
func (s *Server) trainingsPage(c *gin.Context) {
	ctx := c.Request.Context()
	ts, err := s.trainingsByID(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	ms, err := s.store.Machines(ctx, 0, 10_000)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	rows := make([]trainingRow, 0, len(ts))
	for _, t := range ts {
		r := trainingRow{Training: t}
		for _, m := range ms.Items {
			for _, id := range m.RequiredTrainings {
				if id == t.ID && m.State != fablab.MachineRetired {
					r.Machines = append(r.Machines, m.Name)
				}
			}
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Training.Name < rows[j].Training.Name })
	s.render(c, http.StatusOK, "trainings", "trainings_title", rows)
}

// ---- audit log ----

const auditPerPage = 50

// auditKinds are the kinds of audit events the filter offers.
var auditKinds = []string{fablab.AuditTap, fablab.AuditSession, fablab.AuditCommand, fablab.AuditAck, fablab.AuditDevice, fablab.AuditAPI}

// auditData is what the audit page shows.
type auditData struct {
	From, To  string // the filter's lab days, as typed (YYYY-MM-DD)
	Kind      string
	Action    string
	Member    string // email of the member filtered on
	MachineID fablab.ID
	Kinds     []string
	Machines  []fablab.Machine
	Rows      []auditRow
	// NextTo and NextBefore ask for the next (older) page.
	NextTo     string
	NextBefore fablab.ID
	Error      string // a filter that cannot be read (shown in words)
	// Table is the rows, written once in Go (see htmlRows).
	Table template.HTML
}

type auditRow struct {
	Event   fablab.AuditEvent
	Actor   string
	Member  string
	Machine string
	// When, Kind, Action and Reason in the page's language.
	When, WhenISO, Kind, Action, Reason string
}

// auditPage shows the audit log, newest first, filtered by lab days, kind,
// action, member and machine, one page at a time. Pages go back in time:
// the next page holds the events before the oldest one shown.
func (s *Server) auditPage(c *gin.Context) {
	ctx := c.Request.Context()
	st, err := s.store.Settings(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	loc := st.Location()
	now := s.now()
	today := fablab.DateOf(now.In(loc))
	d := auditData{From: c.Query("from"), To: c.Query("to"), Kind: c.Query("kind"), Action: c.Query("action"), Member: c.Query("member"), Kinds: auditKinds}
	f := bolt.AuditFilter{Kind: d.Kind, Action: d.Action, Limit: auditPerPage + 1}
	fromDay, toDay := today.AddDays(-7), today
	if d.From != "" {
		if fromDay, err = fablab.ParseDate(d.From); err != nil {
			s.pageFail(c, fablab.Errorf(fablab.EINVALID, "from must be a date such as 2026-03-02"))
			return
		}
	}
	if d.To != "" {
		if toDay, err = fablab.ParseDate(d.To); err != nil {
			s.pageFail(c, fablab.Errorf(fablab.EINVALID, "to must be a date such as 2026-03-02"))
			return
		}
	}
	f.From, f.To = fromDay.In(loc), toDay.AddDays(1).In(loc)
	if d.From == "" {
		d.From = fromDay.String()
	}
	if d.To == "" {
		d.To = toDay.String()
	}
	if d.MachineID, err = queryID(c, "machine_id"); err != nil {
		s.pageFail(c, err)
		return
	}
	f.MachineID = d.MachineID
	if d.Member != "" {
		m, err := s.store.MemberByEmail(ctx, d.Member)
		if err != nil {
			if fablab.ErrorCode(err) != fablab.ENOTFOUND {
				s.pageFail(c, err)
				return
			}
			d.Error = "audit_no_member"
		}
		f.MemberID = m.ID
	}
	// A later page: events strictly older than the last one shown, which
	// was at page_to (exclusive bound + 1 s) with id before.
	before, err := queryID(c, "before")
	if err != nil {
		s.pageFail(c, err)
		return
	}
	if pt := c.Query("page_to"); pt != "" {
		t, err := time.Parse(time.RFC3339, pt)
		if err != nil {
			s.pageFail(c, fablab.Errorf(fablab.EINVALID, "page_to must be an RFC 3339 time"))
			return
		}
		f.To = t
		f.Limit += auditPerPage // the events of the boundary second already shown are skipped below
	}
	n, err := s.names(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	for _, m := range n.machines {
		d.Machines = append(d.Machines, m)
	}
	sort.Slice(d.Machines, func(i, j int) bool { return d.Machines[i].Name < d.Machines[j].Name })
	if d.Error == "" {
		evs, err := s.store.AuditEvents(ctx, f)
		if err != nil {
			s.pageFail(c, err)
			return
		}
		boundary := f.To.Add(-time.Second).Truncate(time.Second)
		var rows []auditRow
		for _, ev := range evs {
			if before != 0 && !ev.At.Before(boundary) && ev.ID >= before {
				continue // shown on the page before
			}
			rows = append(rows, auditRow{Event: ev, Actor: n.member(ev.ActorID), Member: n.member(ev.MemberID), Machine: n.machine(ev.MachineID)})
		}
		if len(rows) > auditPerPage {
			rows = rows[:auditPerPage]
			last := rows[len(rows)-1].Event
			d.NextTo = last.At.Truncate(time.Second).Add(time.Second).UTC().Format(time.RFC3339)
			d.NextBefore = last.ID
		}
		d.Rows = rows
	}
	v, err := s.newView(c, "audit", "audit_title", d)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	words := map[string]string{}
	word := func(prefix, code string) string {
		w, ok := words[prefix+code]
		if !ok {
			w = v.TOr(prefix+code, code)
			words[prefix+code] = w
		}
		return w
	}
	for i := range d.Rows {
		r := &d.Rows[i]
		e := r.Event
		r.When, r.WhenISO, r.Kind = v.DateTime(e.At), v.ISO(e.At), word("audit_kind_", e.Kind)
		r.Action = e.Action
		if e.Kind != fablab.AuditAPI {
			r.Action = word("audit_action_", e.Action)
		}
		if e.Reason != "" {
			// A tap's reason is a refusal; a session's, why it ended.
			if r.Reason = word("staff_reason_", e.Reason); r.Reason == e.Reason {
				r.Reason = word("staff_end_", e.Reason)
			}
		}
	}
	d.Table = d.auditRows(v)
	v.Data = d
	s.write(c, http.StatusOK, v)
}
