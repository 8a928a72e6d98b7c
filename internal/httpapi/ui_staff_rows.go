package httpapi

import (
	"html"
	"html/template"
	"strings"
)

// htmlRows writes the rows of a long table (or the cards of a long list) in
// Go, escaping every value: html/template spends microseconds on each
// action, and a day of a big lab is hundreds of rows. Every word comes
// from the message files, as in the templates.
type htmlRows struct{ b strings.Builder }

// raw writes markup as is (constant strings of the caller only).
func (r *htmlRows) raw(s ...string) {
	for _, x := range s {
		r.b.WriteString(x)
	}
}

// text writes s escaped, for text and for double-quoted attribute values.
func (r *htmlRows) text(s string) { r.b.WriteString(html.EscapeString(s)) }

// cell writes a <td> with its column's name for narrow screens, then body
// writes its content.
func (r *htmlRows) cell(label string, body func()) {
	r.raw(`<td data-label="`)
	r.text(label)
	r.raw(`">`)
	body()
	r.raw("</td>")
}

// html is what was written, for the template.
func (r *htmlRows) html() template.HTML { return template.HTML(r.b.String()) }

// machineCards writes the dashboard's machine cards.
func (d *dashboardData) machineCards(v *view) template.HTML {
	var r htmlRows
	usedBy := v.T("dashboard_used_by")
	for _, m := range d.Machines {
		id := m.Machine.ID.String()
		r.raw(`<li class="card machine" data-machine="`, id, `" data-machine-name="`)
		r.text(m.Machine.Name)
		r.raw(`" data-device="`)
		r.text(m.Machine.DeviceID)
		r.raw(`" data-state="`)
		r.text(m.State)
		r.raw(`" data-base-state="`)
		r.text(m.BaseState)
		r.raw(`">`, "\n", `<h3><a href="/machines/`, id, `">`)
		r.text(m.Machine.Name)
		r.raw(`</a></h3><p class="muted">`)
		r.text(m.Kind)
		r.raw(`</p><p><span class="badge state-`)
		r.text(m.State)
		r.raw(`" data-state-label>`)
		r.text(m.StateText)
		r.raw(`</span></p><p class="who-uses" data-user>`)
		if m.Session != nil {
			r.text(usedBy + " " + m.User)
		}
		r.raw("</p></li>\n")
	}
	return r.html()
}

// bookingRows writes the rows of today's bookings.
func (d *dashboardData) bookingRows(v *view) template.HTML {
	var r htmlRows
	cTime, cMachine, cMember, cState := v.T("staff_col_time"), v.T("staff_col_machine"), v.T("staff_col_member"), v.T("staff_col_state")
	for _, b := range d.Bookings {
		r.raw("<tr>")
		r.cell(cTime, func() {
			r.raw(`<time datetime="`, b.StartISO, `">`)
			r.text(b.Start)
			r.raw(`</time> – <time datetime="`, b.EndISO, `">`)
			r.text(b.End)
			r.raw("</time>")
		})
		r.cell(cMachine, func() { r.text(b.Machine) })
		r.cell(cMember, func() {
			r.raw(`<a href="/staff/members/`, b.Booking.MemberID.String(), `">`)
			r.text(b.Member)
			r.raw("</a>")
		})
		r.cell(cState, func() { r.text(b.State) })
		r.raw("</tr>\n")
	}
	return r.html()
}

// memberRows writes the rows of the members page.
func (d *membersData) memberRows(v *view) template.HTML {
	var r htmlRows
	cName, cEmail, cRole := v.T("staff_col_name"), v.T("staff_col_email"), v.T("staff_col_role")
	cGroup, cOrg, cStatus := v.T("staff_col_group"), v.T("staff_col_organisation"), v.T("staff_col_status")
	for _, m := range d.Members {
		r.raw("<tr>")
		r.cell(cName, func() {
			r.raw(`<a href="/staff/members/`, m.Member.ID.String(), `">`)
			r.text(m.Member.Name)
			r.raw("</a>")
		})
		r.cell(cEmail, func() { r.text(m.Member.Email) })
		r.cell(cRole, func() { r.text(m.Role) })
		r.cell(cGroup, func() { r.text(m.Member.Group) })
		r.cell(cOrg, func() { r.text(m.Organisation) })
		r.cell(cStatus, func() { r.text(m.Status) })
		r.raw("</tr>\n")
	}
	return r.html()
}

// auditRows writes the rows of the audit log.
func (d *auditData) auditRows(v *view) template.HTML {
	var r htmlRows
	cWhen, cWhat, cWho := v.T("audit_when"), v.T("audit_what"), v.T("audit_who")
	cMachine, cReason, unknown := v.T("staff_col_machine"), v.T("staff_col_reason"), v.T("dashboard_unknown_badge")
	member := func(id, name string) {
		r.raw(`<a href="/staff/members/`, id, `">`)
		r.text(name)
		r.raw("</a>")
	}
	for _, row := range d.Rows {
		e := row.Event
		r.raw(`<tr data-event="`, e.ID.String(), `">`)
		r.cell(cWhen, func() {
			r.raw(`<time datetime="`, row.WhenISO, `">`)
			r.text(row.When)
			r.raw("</time>")
		})
		r.cell(cWhat, func() {
			r.text(row.Kind)
			r.raw(" · ")
			if e.Kind == "api" {
				r.raw("<code>")
				r.text(row.Action)
				r.raw("</code>")
			} else {
				r.text(row.Action)
			}
		})
		r.cell(cWho, func() {
			if row.Actor != "" {
				member(e.ActorID.String(), row.Actor)
			}
			if row.Member != "" && e.MemberID != e.ActorID {
				if row.Actor != "" {
					r.raw(" → ")
				}
				member(e.MemberID.String(), row.Member)
			}
			if row.Actor == "" && row.Member == "" && e.Reason == "unknown_badge" {
				r.text(unknown)
			}
		})
		r.cell(cMachine, func() {
			r.text(row.Machine)
			if e.DeviceID != "" {
				r.raw(" <small>")
				r.text(e.DeviceID)
				r.raw("</small>")
			}
		})
		r.cell(cReason, func() { r.text(row.Reason) })
		r.raw("</tr>\n")
	}
	return r.html()
}
