package httpapi

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// TestAPIBadInput sends malformed and wrong requests: each gets its status and
// code, never a 5xx, and nothing is written.
func TestAPIBadInput(t *testing.T) {
	h := newAPIHarness(t)
	existing := h.seedBooking(t, h.printer.ID, h.bob, apiAt(1, 14, 0), apiAt(1, 15, 0))
	printer, laser := h.printer.ID.String(), h.laser.ID.String()
	tue10, tue11 := apiAt(1, 10, 0).Format(time.RFC3339), apiAt(1, 11, 0).Format(time.RFC3339)
	valid := `{"machine_id":"` + printer + `","start":"` + tue10 + `","end":"` + tue11 + `"}`
	validMember := `{"email":"carol@fablab.test","name":"Carol","role":"maker","group":"student","password":"a long password"}`
	q := url.QueryEscape
	year := "from=" + q(apiAt(0, 0, 0).Format(time.RFC3339)) + "&to=" + q(apiAt(367, 0, 0).Format(time.RFC3339))

	type tc = apiRefusal
	post := func(path, body string) apiReq { return apiReq{method: "POST", path: path, body: body} }
	get := func(path string) apiReq { return apiReq{method: "GET", path: path} }
	cases := []tc{
		// JSON shape
		{"malformed JSON", h.alice, post("/api/v1/bookings", `{"machine_id":`), 400, fablab.EINVALID},
		{"malformed JSON syntax", h.alice, post("/api/v1/bookings", `{"machine_id" "1"}`), 400, fablab.EINVALID},
		{"single quotes", h.alice, post("/api/v1/bookings", `{'machine_id':'1'}`), 400, fablab.EINVALID},
		{"trailing object", h.alice, post("/api/v1/bookings", valid+`{}`), 400, fablab.EINVALID},
		{"trailing garbage", h.alice, post("/api/v1/bookings", valid+` x`), 400, fablab.EINVALID},
		{"trailing comma", h.alice, post("/api/v1/bookings", strings.TrimSuffix(valid, "}")+`,}`), 400, fablab.EINVALID},
		{"empty body", h.alice, post("/api/v1/bookings", ""), 400, fablab.EINVALID},
		{"no body", h.alice, apiReq{method: "POST", path: "/api/v1/bookings"}, 400, fablab.EINVALID},
		{"blank body", h.alice, post("/api/v1/bookings", " \n\t "), 400, fablab.EINVALID},
		{"null body", h.alice, post("/api/v1/bookings", "null"), 400, fablab.EINVALID},
		{"array body", h.alice, post("/api/v1/bookings", "["+valid+"]"), 400, fablab.EINVALID},
		{"string body", h.alice, post("/api/v1/bookings", `"hello"`), 400, fablab.EINVALID},
		{"unknown field", h.alice, post("/api/v1/bookings", strings.TrimSuffix(valid, "}")+`,"note":"x"}`), 400, fablab.EINVALID},
		{"duplicate key with a bad value", h.alice, post("/api/v1/bookings", strings.TrimSuffix(valid, "}")+`,"machine_id":"x"}`), 400, fablab.EINVALID},
		{"unknown member field", h.staff, post("/api/v1/members", strings.TrimSuffix(validMember, "}")+`,"is_admin":true}`), 400, fablab.EINVALID},
		{"password_hash is not a field", h.admin, post("/api/v1/members", strings.TrimSuffix(validMember, "}")+`,"password_hash":"$argon2id$"}`), 400, fablab.EINVALID},

		// types
		{"machine_id as a number", h.alice, post("/api/v1/bookings", `{"machine_id":`+printer+`,"start":"`+tue10+`","end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"machine_id zero", h.alice, post("/api/v1/bookings", `{"machine_id":"0","start":"`+tue10+`","end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"machine_id negative", h.alice, post("/api/v1/bookings", `{"machine_id":"-2","start":"`+tue10+`","end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"machine_id not decimal", h.alice, post("/api/v1/bookings", `{"machine_id":"0x2","start":"`+tue10+`","end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"machine_id too big", h.alice, post("/api/v1/bookings", `{"machine_id":"99999999999999999999999","start":"`+tue10+`","end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"machine_id null", h.alice, post("/api/v1/bookings", `{"machine_id":null,"start":"`+tue10+`","end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"start as a number", h.alice, post("/api/v1/bookings", `{"machine_id":"`+printer+`","start":1772442000,"end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"start as an object", h.alice, post("/api/v1/bookings", `{"machine_id":"`+printer+`","start":{},"end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"email as a number", h.staff, post("/api/v1/members", `{"email":12,"name":"Carol","group":"student"}`), 400, fablab.EINVALID},
		{"role as an array", h.staff, post("/api/v1/members", `{"email":"carol@fablab.test","name":"Carol","group":"student","role":["maker"]}`), 400, fablab.EINVALID},
		{"rules as a string", h.staff, post("/api/v1/machines", `{"name":"Saw","kind":"saw","rules":"strict"}`), 400, fablab.EINVALID},
		{"slot_minutes as a string", h.staff, post("/api/v1/machines", `{"name":"Saw","kind":"saw","rules":{"slot_minutes":"30"}}`), 400, fablab.EINVALID},
		{"price as a float", h.staff, post("/api/v1/machines", `{"name":"Saw","kind":"saw","prices":{"student":1.5}}`), 400, fablab.EINVALID},
		{"opening hour not HH:MM", h.admin, apiReq{method: "PATCH", path: "/api/v1/settings", body: `{"opening_hours":{"monday":[{"open":"9h","close":"18:00"}]}}`}, 400, fablab.EINVALID},

		// times
		{"start not RFC 3339", h.alice, post("/api/v1/bookings", `{"machine_id":"`+printer+`","start":"2026-03-03 10:00","end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"start without zone", h.alice, post("/api/v1/bookings", `{"machine_id":"`+printer+`","start":"2026-03-03T10:00:00","end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"start a date only", h.alice, post("/api/v1/bookings", `{"machine_id":"`+printer+`","start":"2026-03-03","end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"start impossible date", h.alice, post("/api/v1/bookings", `{"machine_id":"`+printer+`","start":"2026-02-30T10:00:00+01:00","end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"missing start", h.alice, post("/api/v1/bookings", `{"machine_id":"`+printer+`","end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"missing machine", h.alice, post("/api/v1/bookings", `{"start":"`+tue10+`","end":"`+tue11+`"}`), 400, fablab.EINVALID},
		{"end before start", h.alice, post("/api/v1/bookings", `{"machine_id":"`+printer+`","start":"`+tue11+`","end":"`+tue10+`"}`), 400, fablab.EINVALID},
		{"end equal to start", h.alice, post("/api/v1/bookings", `{"machine_id":"`+printer+`","start":"`+tue10+`","end":"`+tue10+`"}`), 400, fablab.EINVALID},
		{"longer than a week", h.staff, post("/api/v1/bookings", `{"machine_id":"`+printer+`","start":"`+tue10+`","end":"`+apiAt(9, 10, 0).Format(time.RFC3339)+`"}`), 400, fablab.EINVALID},
		{"year 10000 in UTC", h.staff, post("/api/v1/bookings", `{"machine_id":"`+printer+`","start":"9999-12-31T10:00:00-23:00","end":"9999-12-31T11:00:00-23:00"}`), 400, fablab.EINVALID},
		{"membership until year 10000 in UTC", h.staff, post("/api/v1/members", `{"email":"carol@fablab.test","name":"Carol","group":"student","membership_until":"9999-12-31T23:00:00-23:00"}`), 400, fablab.EINVALID},
		{"qualification expired already", h.staff, post("/api/v1/members/"+h.bob.ID.String()+"/qualifications", `{"training_id":"`+h.training.ID.String()+`","expires_at":"2020-01-01T00:00:00Z"}`), 400, fablab.EINVALID},

		// ranges and queries
		{"availability over a year", h.alice, get("/api/v1/machines/" + laser + "/availability?" + year), 400, fablab.EINVALID},
		{"bookings over a year", h.staff, get("/api/v1/bookings?machine_id=" + printer + "&" + year), 400, fablab.EINVALID},
		{"availability to before from", h.alice, get("/api/v1/machines/" + laser + "/availability?from=" + q(tue11) + "&to=" + q(tue10)), 400, fablab.EINVALID},
		{"availability bad from", h.alice, get("/api/v1/machines/" + laser + "/availability?from=tomorrow"), 400, fablab.EINVALID},
		{"availability + not escaped", h.alice, get("/api/v1/machines/" + laser + "/availability?from=2026-03-03T10:00:00+01:00"), 400, fablab.EINVALID},
		{"availability date only", h.alice, get("/api/v1/machines/" + laser + "/availability?to=2026-03-05"), 400, fablab.EINVALID},
		{"availability year 9999", h.alice, get("/api/v1/machines/" + laser + "/availability?from=9999-12-30T00:00:00Z"), 400, fablab.EINVALID},
		{"bookings bad to", h.alice, get("/api/v1/bookings?to=" + q("2026-13-01T00:00:00Z")), 400, fablab.EINVALID},
		{"bookings bad machine_id", h.alice, get("/api/v1/bookings?machine_id=printer"), 400, fablab.EINVALID},
		{"bookings bad member_id", h.staff, get("/api/v1/bookings?member_id=-1"), 400, fablab.EINVALID},
		{"members limit zero", h.staff, get("/api/v1/members?limit=0"), 400, fablab.EINVALID},
		{"members limit not a number", h.staff, get("/api/v1/members?limit=ten"), 400, fablab.EINVALID},
		{"members limit too big", h.staff, get("/api/v1/members?limit=1001"), 400, fablab.EINVALID},
		{"members limit with sign", h.staff, get("/api/v1/members?limit=+5"), 400, fablab.EINVALID},
		{"members bad after", h.staff, get("/api/v1/members?after=x"), 400, fablab.EINVALID},

		// ids that do not exist
		{"booking on an unknown machine", h.alice, post("/api/v1/bookings", `{"machine_id":"999","start":"`+tue10+`","end":"`+tue11+`"}`), 404, fablab.ENOTFOUND},
		{"booking for an unknown member", h.staff, post("/api/v1/bookings", `{"machine_id":"`+printer+`","member_id":"999","start":"`+tue10+`","end":"`+tue11+`"}`), 404, fablab.ENOTFOUND},
		{"unknown machine", h.alice, get("/api/v1/machines/999"), 404, fablab.ENOTFOUND},
		{"availability of an unknown machine", h.alice, get("/api/v1/machines/999/availability"), 404, fablab.ENOTFOUND},
		{"patch an unknown machine", h.staff, apiReq{method: "PATCH", path: "/api/v1/machines/999", body: `{"name":"x"}`}, 404, fablab.ENOTFOUND},
		{"unknown booking", h.alice, get("/api/v1/bookings/999"), 404, fablab.ENOTFOUND},
		{"cancel an unknown booking", h.staff, apiReq{method: "DELETE", path: "/api/v1/bookings/999"}, 404, fablab.ENOTFOUND},
		{"unknown member", h.staff, get("/api/v1/members/999"), 404, fablab.ENOTFOUND},
		{"patch an unknown member", h.staff, apiReq{method: "PATCH", path: "/api/v1/members/999", body: `{"name":"x"}`}, 404, fablab.ENOTFOUND},
		{"badge for an unknown member", h.staff, post("/api/v1/members/999/badges", `{"uid":"04A2B3C4"}`), 404, fablab.ENOTFOUND},
		{"badges of an unknown member", h.staff, get("/api/v1/members/999/badges"), 404, fablab.ENOTFOUND},
		{"qualification of an unknown member", h.staff, post("/api/v1/members/999/qualifications", `{"training_id":"`+h.training.ID.String()+`"}`), 404, fablab.ENOTFOUND},
		{"qualification in an unknown training", h.staff, post("/api/v1/members/"+h.bob.ID.String()+"/qualifications", `{"training_id":"999"}`), 404, fablab.ENOTFOUND},
		{"qualifications of an unknown member", h.staff, get("/api/v1/members/999/qualifications"), 404, fablab.ENOTFOUND},
		{"member of an unknown organisation", h.staff, post("/api/v1/members", `{"email":"carol@fablab.test","name":"Carol","organisation_id":"999"}`), 404, fablab.ENOTFOUND},
		{"machine requiring an unknown training", h.staff, post("/api/v1/machines", `{"name":"Saw","kind":"saw","required_trainings":["999"]}`), 404, fablab.ENOTFOUND},

		// path ids that are not ids
		{"non-numeric machine id", h.alice, get("/api/v1/machines/laser"), 404, fablab.ENOTFOUND},
		{"zero machine id", h.alice, get("/api/v1/machines/0"), 404, fablab.ENOTFOUND},
		{"leading zero machine id", h.alice, get("/api/v1/machines/0" + laser), 404, fablab.ENOTFOUND},
		{"negative booking id", h.alice, get("/api/v1/bookings/-1"), 404, fablab.ENOTFOUND},
		{"non-numeric booking id to cancel", h.alice, apiReq{method: "DELETE", path: "/api/v1/bookings/abc"}, 404, fablab.ENOTFOUND},
		{"huge member id", h.staff, get("/api/v1/members/184467440737095516150"), 404, fablab.ENOTFOUND},
		{"non-numeric member id to patch", h.staff, apiReq{method: "PATCH", path: "/api/v1/members/me", body: `{"name":"x"}`}, 404, fablab.ENOTFOUND},

		// size and media type
		{"body over 1 MiB", h.alice, post("/api/v1/bookings", `{"machine_id":"`+strings.Repeat("1", maxBody)+`"}`), 413, "payload_too_large"},
		{"body over 1 MiB of padding", h.alice, post("/api/v1/bookings", valid+strings.Repeat(" ", maxBody)), 413, "payload_too_large"},
		{"member body over 1 MiB", h.staff, post("/api/v1/members", `{"name":"`+strings.Repeat("a", maxBody)+`"}`), 413, "payload_too_large"},
		{"text/plain", h.alice, apiReq{method: "POST", path: "/api/v1/bookings", body: valid, contentType: "text/plain"}, 415, "unsupported_media_type"},
		{"form", h.alice, apiReq{method: "POST", path: "/api/v1/bookings", body: valid, contentType: "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"json lookalike", h.alice, apiReq{method: "POST", path: "/api/v1/bookings", body: valid, contentType: "application/jsonp"}, 415, "unsupported_media_type"},
		{"malformed content type", h.alice, apiReq{method: "POST", path: "/api/v1/bookings", body: valid, contentType: "application/json; charset"}, 415, "unsupported_media_type"},
		{"login as a form", nil, apiReq{method: "POST", path: "/api/v1/auth/login", body: "email=alice@fablab.test&password=x", contentType: "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},

		// domain validation
		{"member with a bad email", h.staff, post("/api/v1/members", `{"email":"carol","name":"Carol","group":"student"}`), 400, fablab.EINVALID},
		{"member with an unknown group", h.staff, post("/api/v1/members", `{"email":"carol@fablab.test","name":"Carol","group":"vip"}`), 400, fablab.EINVALID},
		{"member with an unknown role", h.admin, post("/api/v1/members", `{"email":"carol@fablab.test","name":"Carol","group":"student","role":"root"}`), 400, fablab.EINVALID},
		{"member with a short password", h.staff, post("/api/v1/members", `{"email":"carol@fablab.test","name":"Carol","group":"student","password":"short"}`), 400, fablab.EINVALID},
		{"member without name", h.staff, post("/api/v1/members", `{"email":"carol@fablab.test","group":"student"}`), 400, fablab.EINVALID},
		{"member with a taken email", h.staff, post("/api/v1/members", `{"email":"ALICE@fablab.test","name":"Alice 2","group":"student"}`), 409, "email_taken"},
		{"badge that is not hex", h.staff, post("/api/v1/members/"+h.bob.ID.String()+"/badges", `{"uid":"not hex"}`), 400, fablab.EINVALID},
		{"machine with a bad kind", h.staff, post("/api/v1/machines", `{"name":"Saw","kind":"Table Saw"}`), 400, fablab.EINVALID},
		{"machine without name", h.staff, post("/api/v1/machines", `{"kind":"saw"}`), 400, fablab.EINVALID},
		{"machine with bad rules", h.staff, apiReq{method: "PATCH", path: "/api/v1/machines/" + printer, body: `{"rules":{"slot_minutes":7}}`}, 400, fablab.EINVALID},
		{"settings with a bad time zone", h.admin, apiReq{method: "PATCH", path: "/api/v1/settings", body: `{"time_zone":"Mars/Olympus"}`}, 400, fablab.EINVALID},
		{"tariffs removing a group", h.admin, apiReq{method: "PUT", path: "/api/v1/tariffs", body: `{"groups":[{"id":"student","name":"Étudiant"}]}`}, 400, fablab.EINVALID},
		{"training without name", h.staff, post("/api/v1/trainings", `{"name":"  "}`), 400, fablab.EINVALID},
		{"organisation with an unknown group", h.staff, post("/api/v1/organisations", `{"name":"Acme","group":"vip"}`), 400, fablab.EINVALID},
		{"login without password", nil, post("/api/v1/auth/login", `{"email":"alice@fablab.test"}`), 400, fablab.EINVALID},
		{"login with an unknown field", nil, post("/api/v1/auth/login", `{"email":"alice@fablab.test","password":"alice password","remember":true}`), 400, fablab.EINVALID},
		{"cancel twice", h.staff, apiReq{method: "DELETE", path: "/api/v1/bookings/" + h.cancelled(t, existing).ID.String()}, 422, fablab.CodeNotCancellable},
	}
	// Messages say what to fix.
	details := map[string]string{
		"unknown field":          `"note"`,
		"machine_id as a number": `"machine_id" must be a string`,
		"start not RFC 3339":     "RFC 3339",
		"empty body":             "empty",
		"trailing object":        "exactly one JSON object",
		"body over 1 MiB":        "larger than 1048576 bytes",
		"availability bad from":  "query from must be an RFC 3339 time",
		"end before start":       "end must be after start",
		"text/plain":             "application/json",
	}
	apiCheckRefusals(t, h, cases, details)

	// The same bodies with the right media type spelled differently are fine.
	for _, ct := range []string{"application/json; charset=utf-8", "Application/JSON", "application/json;charset=UTF-8"} {
		t.Run("accepted "+ct, func(t *testing.T) {
			start := h.nextSlot(apiAt(2, 9, 0)) // clear of the day the failing cases aim at
			body := apiBookingBody(h.printer.ID, start, start.Add(apiMinutes(30)))
			h.send(t, apiReq{method: "POST", path: "/api/v1/bookings", token: h.alice.Token, body: body, contentType: ct}).want(t, http.StatusCreated, "")
		})
	}
	t.Run("accepted without content type", func(t *testing.T) {
		start := h.nextSlot(apiAt(2, 9, 0)) // clear of the day the failing cases aim at
		body := apiBookingBody(h.printer.ID, start, start.Add(apiMinutes(30)))
		h.send(t, apiReq{method: "POST", path: "/api/v1/bookings", token: h.alice.Token, body: body, contentType: "-"}).want(t, http.StatusCreated, "")
	})
	t.Run("accepted just under 1 MiB", func(t *testing.T) {
		start := h.nextSlot(apiAt(2, 9, 0)) // clear of the day the failing cases aim at
		body := `{"machine_id":"` + printer + `","start":"` + start.Format(time.RFC3339) + `","end":"` + start.Add(apiMinutes(30)).Format(time.RFC3339) + `"}`
		body += strings.Repeat(" ", maxBody-len(body))
		h.send(t, apiReq{method: "POST", path: "/api/v1/bookings", token: h.alice.Token, body: body}).want(t, http.StatusCreated, "")
	})
}

// cancelled cancels b as staff over HTTP and returns it.
func (h *apiHarness) cancelled(t testing.TB, b fablab.Booking) fablab.Booking {
	t.Helper()
	res := h.do(t, "DELETE", "/api/v1/bookings/"+b.ID.String(), h.staff.Token, nil)
	res.want(t, http.StatusOK, "")
	var out fablab.Booking
	res.decode(t, &out)
	return out
}
