package httpapi

import (
	"bytes"
	"encoding"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/booking"
	"github.com/fabgate/fabgate/internal/events"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/jobs"
)

// The OpenAPI document is checked against the real server: its routes, the
// roles its middleware enforces, the JSON of the Go types and the error codes.

// openapiServer builds a real server on a fresh store.
func openapiServer(t *testing.T) (*Server, *bolt.Store) {
	t.Helper()
	store := bolttest.Open(t, nil)
	// Simulated taps are on so that POST /devices/{id}/tap gets past its
	// demo-only gate to the handler, like every other route.
	s, err := New(Config{Store: store, SimulateTaps: true})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, store
}

// openapiParse parses the embedded document afresh (so callers may change it).
func openapiParse(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	return doc
}

// apiOperation is a method and a path in OpenAPI syntax (/machines/{id}).
type apiOperation struct{ Method, Path string }

func (o apiOperation) String() string { return o.Method + " " + o.Path }

var openapiMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// servedOperations lists the routes under /api/v1, with Gin's :name and
// *name segments written as {name}.
func servedOperations(routes gin.RoutesInfo) []apiOperation {
	var ops []apiOperation
	for _, r := range routes {
		if !strings.HasPrefix(r.Path, "/api/v1/") {
			continue
		}
		segs := strings.Split(r.Path, "/")
		for i, s := range segs {
			if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
				segs[i] = "{" + s[1:] + "}"
			}
		}
		ops = append(ops, apiOperation{r.Method, strings.Join(segs, "/")})
	}
	return ops
}

// documentedOperations lists the operations of the document's paths.
func documentedOperations(doc map[string]any) []apiOperation {
	var ops []apiOperation
	paths, _ := doc["paths"].(map[string]any)
	for p, item := range paths {
		item, _ := item.(map[string]any)
		for _, m := range openapiMethods {
			if _, ok := item[m]; ok {
				ops = append(ops, apiOperation{strings.ToUpper(m), p})
			}
		}
	}
	return ops
}

// compareOperations reports, sorted, each route the document lacks and each
// documented operation no route serves.
func compareOperations(served, documented []apiOperation) []string {
	var problems []string
	for _, o := range served {
		if !slices.Contains(documented, o) {
			problems = append(problems, o.String()+" is served but not documented in openapi.json")
		}
	}
	for _, o := range documented {
		if !slices.Contains(served, o) {
			problems = append(problems, o.String()+" is documented in openapi.json but no route serves it")
		}
	}
	slices.Sort(problems)
	return problems
}

// openapiOperation is one documented operation with its object.
type openapiOperation struct {
	apiOperation
	Op   map[string]any
	Item map[string]any // the path item, for path-level parameters
}

func openapiOperations(doc map[string]any) []openapiOperation {
	var ops []openapiOperation
	paths, _ := doc["paths"].(map[string]any)
	for _, o := range documentedOperations(doc) {
		item := paths[o.Path].(map[string]any)
		op, _ := item[strings.ToLower(o.Method)].(map[string]any)
		ops = append(ops, openapiOperation{o, op, item})
	}
	slices.SortFunc(ops, func(a, b openapiOperation) int { return strings.Compare(a.String(), b.String()) })
	return ops
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	s, _ := openapiServer(t)
	served := servedOperations(s.Routes())
	if len(served) == 0 {
		t.Fatal("the server has no routes under /api/v1")
	}
	for _, p := range compareOperations(served, documentedOperations(openapiParse(t))) {
		t.Error(p)
	}
}

func TestOpenAPIServedOperations(t *testing.T) {
	routes := gin.RoutesInfo{
		{Method: "GET", Path: "/healthz"},
		{Method: "GET", Path: "/api/v1"},
		{Method: "PATCH", Path: "/api/v1/machines/:id"},
		{Method: "GET", Path: "/api/v1/files/:id/*rest"},
	}
	got := servedOperations(routes)
	want := []apiOperation{{"PATCH", "/api/v1/machines/{id}"}, {"GET", "/api/v1/files/{id}/{rest}"}}
	if !slices.Equal(got, want) {
		t.Errorf("servedOperations = %v, want %v", got, want)
	}
}

// TestOpenAPICompareReportsDrift checks the checker: a document that lost or
// gained an operation must be reported, naming it. Problems of the real
// document are TestOpenAPIMatchesRoutes's to report and are left out here.
func TestOpenAPICompareReportsDrift(t *testing.T) {
	s, _ := openapiServer(t)
	served := servedOperations(s.Routes())
	baseline := compareOperations(served, documentedOperations(openapiParse(t)))
	paths := func(doc map[string]any) map[string]any { return doc["paths"].(map[string]any) }
	cases := []struct {
		name   string
		change func(doc map[string]any)
		want   []string
	}{
		{"complete document", func(map[string]any) {}, nil},
		{"path removed", func(doc map[string]any) { delete(paths(doc), "/api/v1/machines/{id}") }, []string{
			"GET /api/v1/machines/{id} is served but not documented in openapi.json",
			"PATCH /api/v1/machines/{id} is served but not documented in openapi.json",
		}},
		{"method removed", func(doc map[string]any) {
			delete(paths(doc)["/api/v1/bookings/{id}"].(map[string]any), "delete")
		}, []string{"DELETE /api/v1/bookings/{id} is served but not documented in openapi.json"}},
		{"operation without a route", func(doc map[string]any) {
			paths(doc)["/api/v1/machines/{id}"].(map[string]any)["delete"] = map[string]any{"summary": "Delete a machine"}
		}, []string{"DELETE /api/v1/machines/{id} is documented in openapi.json but no route serves it"}},
		{"path without a route", func(doc map[string]any) {
			paths(doc)["/api/v1/widgets"] = map[string]any{"get": map[string]any{"summary": "List widgets"}}
		}, []string{"GET /api/v1/widgets is documented in openapi.json but no route serves it"}},
		{"path in Gin syntax", func(doc map[string]any) {
			p := paths(doc)
			p["/api/v1/members/:id/badges"] = p["/api/v1/members/{id}/badges"]
			delete(p, "/api/v1/members/{id}/badges")
		}, []string{
			"GET /api/v1/members/:id/badges is documented in openapi.json but no route serves it",
			"GET /api/v1/members/{id}/badges is served but not documented in openapi.json",
			"POST /api/v1/members/:id/badges is documented in openapi.json but no route serves it",
			"POST /api/v1/members/{id}/badges is served but not documented in openapi.json",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := openapiParse(t)
			tc.change(doc)
			var got []string
			for _, p := range compareOperations(served, documentedOperations(doc)) {
				if !slices.Contains(baseline, p) {
					got = append(got, p)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestOpenAPIDocument(t *testing.T) {
	doc := openapiParse(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("openapi is %q, want 3.x", v)
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] == nil {
		t.Error("info needs a title and a version")
	}

	comps, _ := doc["components"].(map[string]any)
	schemes, _ := comps["securitySchemes"].(map[string]any)
	if b, _ := schemes["bearerAuth"].(map[string]any); b["type"] != "http" || b["scheme"] != "bearer" {
		t.Errorf("bearerAuth is %v, want an http bearer scheme", b)
	}
	if c, _ := schemes["cookieAuth"].(map[string]any); c["type"] != "apiKey" || c["in"] != "cookie" || c["name"] != sessionCookie {
		t.Errorf("cookieAuth is %v, want an apiKey in the %s cookie", c, sessionCookie)
	}
	params, _ := comps["parameters"].(map[string]any)
	if p, _ := params["CSRFToken"].(map[string]any); p["in"] != "header" || p["name"] != csrfHeader {
		t.Errorf("parameter CSRFToken is %v, want the %s header", p, csrfHeader)
	}

	ids := map[string]string{}
	for _, o := range openapiOperations(doc) {
		if !strings.HasPrefix(o.Path, "/api/v1/") {
			t.Errorf("%s: only /api/v1 is documented here", o)
		}
		if s, _ := o.Op["summary"].(string); s == "" {
			t.Errorf("%s has no summary", o)
		}
		if rs, _ := o.Op["responses"].(map[string]any); len(rs) == 0 {
			t.Errorf("%s has no responses", o)
		}
		id, _ := o.Op["operationId"].(string)
		if prev, dup := ids[id]; id == "" || dup {
			t.Errorf("%s: operationId %q is missing or also used by %s", o, id, prev)
		}
		ids[id] = o.String()

		role, _ := o.Op["x-fabgate-role"].(string)
		if !slices.Contains([]string{"none", "maker", "staff", "admin"}, role) {
			t.Errorf("%s: x-fabgate-role is %q, want none, maker, staff or admin", o, role)
			continue
		}
		if d, _ := o.Op["description"].(string); !strings.HasPrefix(d, "Role: "+role) {
			t.Errorf("%s: description must start with the line \"Role: %s…\", got %q", o, role, d)
		}
		sec, hasSec := o.Op["security"].([]any)
		if public := hasSec && len(sec) == 0; public != (role == "none") {
			t.Errorf("%s: role %s but security %v (public operations have security: [], others inherit the default)", o, role, o.Op["security"])
		}
		declared := openapiParamNames(doc, o)
		if role != "none" && !safeMethod(o.Method) && !declared["header "+csrfHeader] {
			t.Errorf("%s: cookie-authenticated %s needs %s; reference #/components/parameters/CSRFToken", o, o.Method, csrfHeader)
		}
		for _, seg := range strings.Split(o.Path, "/") {
			if strings.HasPrefix(seg, "{") && !declared["path "+strings.Trim(seg, "{}")] {
				t.Errorf("%s: path parameter %s is not declared", o, seg)
			}
		}
	}

	for _, bad := range openapiBrokenRefs(doc, doc, "#") {
		t.Error(bad)
	}
}

// openapiParamNames returns "in name" of the parameters of o and its path item.
func openapiParamNames(doc map[string]any, o openapiOperation) map[string]bool {
	names := map[string]bool{}
	for _, list := range []any{o.Item["parameters"], o.Op["parameters"]} {
		ps, _ := list.([]any)
		for _, p := range ps {
			pm, _ := p.(map[string]any)
			if r, ok := pm["$ref"].(string); ok {
				pm, _ = openapiResolve(doc, r).(map[string]any)
			}
			in, _ := pm["in"].(string)
			name, _ := pm["name"].(string)
			names[in+" "+name] = true
		}
	}
	return names
}

// openapiResolve follows a local JSON pointer; nil when it leads nowhere.
func openapiResolve(doc map[string]any, ref string) any {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	var cur any = doc
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[tok]; !ok {
			return nil
		}
	}
	return cur
}

// openapiBrokenRefs reports every $ref under v (at pointer at) that does not
// lead to a component.
func openapiBrokenRefs(doc map[string]any, v any, at string) []string {
	var bad []string
	switch v := v.(type) {
	case map[string]any:
		if r, ok := v["$ref"]; ok {
			s, _ := r.(string)
			if !strings.HasPrefix(s, "#/components/") || openapiResolve(doc, s) == nil {
				bad = append(bad, at+": $ref "+strconv.Quote(s)+" does not resolve to a component")
			}
		}
		for k, e := range v {
			bad = append(bad, openapiBrokenRefs(doc, e, at+"/"+strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1"))...)
		}
	case []any:
		for i, e := range v {
			bad = append(bad, openapiBrokenRefs(doc, e, at+"/"+strconv.Itoa(i))...)
		}
	}
	slices.Sort(bad)
	return bad
}

func TestOpenAPIBrokenRefsAreReported(t *testing.T) {
	doc := openapiParse(t)
	comps := doc["components"].(map[string]any)
	delete(comps["schemas"].(map[string]any), "Interval")
	bad := openapiBrokenRefs(doc, doc, "#")
	if len(bad) == 0 || !strings.Contains(bad[0], `"#/components/schemas/Interval"`) {
		t.Errorf("deleting schema Interval reported %q, want its references", bad)
	}
}

func TestOpenAPIServed(t *testing.T) {
	s, _ := openapiServer(t)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: status %d, want 200", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type is %q, want application/json", ct)
	}
	if !bytes.Equal(rec.Body.Bytes(), openapiDoc) {
		t.Errorf("the body (%d bytes) is not the embedded openapi.json (%d bytes)", rec.Body.Len(), len(openapiDoc))
	}
}

// TestOpenAPIRoles checks each operation's x-fabgate-role against what the
// server enforces: without credentials 401 (unless public), one role below
// 403 forbidden, and the role itself gets past authentication.
func TestOpenAPIRoles(t *testing.T) {
	s, store := openapiServer(t)
	ctx := t.Context()
	members := map[string]fablab.ID{}
	for _, r := range []fablab.Role{fablab.RoleMaker, fablab.RoleStaff, fablab.RoleAdmin} {
		m, err := store.CreateMember(ctx, fablab.Member{Email: string(r) + "@openapi.test", Name: string(r), Role: r, Group: "student"})
		if err != nil {
			t.Fatalf("create %s: %v", r, err)
		}
		members[string(r)] = m.ID
	}
	// token mints a fresh bearer token, since logout revokes the one it is given.
	token := func(role string) string {
		tok := auth.NewToken()
		now := time.Now().UTC()
		err := store.PutToken(ctx, auth.TokenKey(tok), bolt.Token{MemberID: members[role], CSRF: auth.NewToken(), CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatalf("put token: %v", err)
		}
		return tok
	}
	below := map[string]string{"staff": "maker", "admin": "staff"}

	for _, o := range openapiOperations(openapiParse(t)) {
		role, _ := o.Op["x-fabgate-role"].(string)
		t.Run(o.String(), func(t *testing.T) {
			// An unknown id and an empty object: handlers fail after authentication.
			do := func(tok string) (int, Problem) {
				var body io.Reader
				if o.Method != http.MethodGet && o.Method != http.MethodDelete {
					body = strings.NewReader("{}")
				}
				req := httptest.NewRequest(o.Method, strings.ReplaceAll(o.Path, "{id}", "999999999"), body)
				req.Header.Set("Content-Type", "application/json")
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				rec := httptest.NewRecorder()
				s.Handler().ServeHTTP(rec, req)
				var p Problem
				if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
					_ = json.Unmarshal(rec.Body.Bytes(), &p)
				}
				return rec.Code, p
			}
			status, p := do("")
			switch {
			case role == "none" && (status == http.StatusUnauthorized || status == http.StatusForbidden):
				t.Errorf("documented as public, but without credentials: %d %s (%s)", status, p.Code, p.Detail)
			case role != "none" && (status != http.StatusUnauthorized || p.Code != fablab.EUNAUTHORIZED):
				t.Errorf("documented for role %s, but without credentials: %d %q, want 401 unauthorized", role, status, p.Code)
			}
			if lower, ok := below[role]; ok {
				if status, p := do(token(lower)); status != http.StatusForbidden || p.Code != fablab.EFORBIDDEN {
					t.Errorf("documented for role %s, but as %s: %d %q, want 403 forbidden", role, lower, status, p.Code)
				}
			}
			if role != "none" {
				if status, p := do(token(role)); status == http.StatusUnauthorized || status == http.StatusForbidden {
					t.Errorf("documented for role %s, but as %s: %d %s (%s)", role, role, status, p.Code, p.Detail)
				}
			}
		})
	}
}

// TestOpenAPISchemasMatchGoJSON compares schemas with the JSON of the Go types
// they describe: the same property names and JSON types; for responses, the
// required properties are exactly the fields without omitempty; request
// schemas are closed, as decode rejects unknown fields.
func TestOpenAPISchemasMatchGoJSON(t *testing.T) {
	const (
		response = 1 << iota
		request
	)
	cases := []struct {
		schema string
		v      any
		use    int
	}{
		{"Problem", Problem{}, response},
		{"LoginRequest", loginRequest{}, request},
		{"LoginResponse", loginResponse{}, response},
		{"CalendarFeedCreated", calendarFeedCreated{}, response},
		{"CalendarFeedStatus", calendarFeedStatus{}, response},
		{"Interval", fablab.Interval{}, response},
		{"BookingRules", fablab.BookingRules{}, response | request},
		{"MaintenanceBlock", fablab.MaintenanceBlock{}, response | request},
		{"Machine", fablab.Machine{}, response},
		{"MachineCreate", machineRequest{}, request},
		{"MachinePatch", machineRequest{}, request},
		{"Availability", availabilityResponse{}, response},
		{"Booking", fablab.Booking{}, response},
		{"BookingCreate", bookingRequest{}, request},
		{"ForgotPasswordRequest", forgotPasswordRequest{}, request},
		{"OutboxMessage", outboxMessage{}, response},
		{"JobStatus", jobs.JobStatus{}, response},
		{"Member", fablab.Member{}, response},
		{"MemberCreate", memberRequest{}, request},
		{"MemberPatch", memberRequest{}, request},
		{"Badge", fablab.Badge{}, response},
		{"BadgeCreate", badgeRequest{}, request},
		{"Qualification", fablab.Qualification{}, response},
		{"QualificationGrant", qualificationRequest{}, request},
		{"Training", fablab.Training{}, response},
		{"TrainingCreate", trainingRequest{}, request},
		{"Organisation", fablab.Organisation{}, response},
		{"OrganisationCreate", organisationRequest{}, request},
		{"TariffGroup", fablab.TariffGroup{}, response | request},
		{"Tariffs", tariffsDoc{}, response | request},
		{"Settings", fablab.Settings{}, response},
		{"SettingsPatch", settingsRequest{}, request},
		{"OpeningHours", fablab.OpeningHours{}, response | request},
		{"TimeRange", fablab.TimeRange{}, response | request},
		{"Closure", fablab.Closure{}, response | request},
		{"Device", deviceView{}, response},
		{"DeviceCreated", deviceCreated{}, response},
		{"DeviceKey", deviceKeyEntry{}, response},
		{"BadgeKeyRotated", badgeKeyRotated{}, response},
		{"DeviceCreate", deviceRequest{}, request},
		{"DevicePatch", devicePatch{}, request},
		{"TapRequest", tapRequest{}, request},
		{"TapResult", tapResult{}, response},
		{"Session", fablab.Session{}, response},
		{"AuditEvent", fablab.AuditEvent{}, response},
		{"UnknownTap", fablab.UnknownTap{}, response},
		{"LiveEvent", events.Event{}, response},
		{"MachineChange", events.MachineChange{}, response},
		{"Slot", booking.Slot{}, response},
		{"MachineStatus", machineStatus{}, response},
		{"UsageReport", usageReport{}, response},
		{"UsageRow", usageRow{}, response},
		{"RevenueReport", revenueReport{}, response},
		{"RevenueRow", revenueRow{}, response},
	}
	doc := openapiParse(t)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for _, tc := range cases {
		t.Run(tc.schema, func(t *testing.T) {
			sch, ok := schemas[tc.schema].(map[string]any)
			if !ok {
				t.Fatalf("components/schemas/%s is missing", tc.schema)
			}
			props, _ := sch["properties"].(map[string]any)
			var required []string
			rs, _ := sch["required"].([]any)
			for _, r := range rs {
				required = append(required, r.(string))
			}
			typ := reflect.TypeOf(tc.v)
			var wantRequired []string
			for name, f := range jsonFields(typ) {
				if !f.omitempty {
					wantRequired = append(wantRequired, name)
				}
				p, ok := props[name].(map[string]any)
				if !ok {
					t.Errorf("%s has field %q; the schema lacks it", typ, name)
					continue
				}
				wantType, wantFormat := jsonSchemaType(f.typ)
				got := openapiSchemaOf(doc, p)
				if got["type"] != wantType || (wantFormat != "" && got["format"] != wantFormat) {
					t.Errorf("%q: schema type %v format %v; Go %s marshals as %s %s", name, got["type"], got["format"], f.typ, wantType, wantFormat)
				}
			}
			fields := jsonFields(typ)
			for name := range props {
				if _, ok := fields[name]; !ok {
					t.Errorf("schema property %q is not a JSON field of %s", name, typ)
				}
			}
			if tc.use&response != 0 {
				slices.Sort(required)
				slices.Sort(wantRequired)
				if !slices.Equal(required, wantRequired) {
					t.Errorf("required is %v; %s always marshals %v", required, typ, wantRequired)
				}
			}
			if tc.use&request != 0 && sch["additionalProperties"] != false {
				t.Errorf("request schema needs additionalProperties: false (unknown fields are rejected)")
			}
		})
	}
}

type jsonField struct {
	typ       reflect.Type
	omitempty bool
}

// jsonFields returns the JSON fields encoding/json marshals for struct type
// t, with those of embedded structs without a JSON name promoted (exported
// or not, as encoding/json does; the types here have no clashing names).
// A field with omitempty or omitzero may be left out.
func jsonFields(t reflect.Type) map[string]jsonField {
	fields := map[string]jsonField{}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && tag != "-" && f.Type.Kind() == reflect.Struct {
			maps.Copy(fields, jsonFields(f.Type))
			continue
		}
		if !f.IsExported() || tag == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		o := strings.Split(opts, ",")
		fields[name] = jsonField{f.Type, slices.Contains(o, "omitempty") || slices.Contains(o, "omitzero")}
	}
	return fields
}

// jsonSchemaType returns the schema type (and format, where it matters) of
// the JSON encoding/json writes for t.
func jsonSchemaType(t reflect.Type) (typ, format string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[time.Time]():
		return "string", "date-time"
	case t == reflect.TypeFor[fablab.Date]():
		return "string", "date"
	case t.Implements(reflect.TypeFor[encoding.TextMarshaler]()):
		return "string", ""
	}
	switch t.Kind() {
	case reflect.String:
		return "string", ""
	case reflect.Bool:
		return "boolean", ""
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer", ""
	case reflect.Float32, reflect.Float64:
		return "number", ""
	case reflect.Slice, reflect.Array:
		return "array", ""
	}
	return "object", ""
}

// openapiSchemaOf follows $ref and a lone allOf to the schema that says the type.
func openapiSchemaOf(doc map[string]any, s map[string]any) map[string]any {
	for range 10 {
		if r, ok := s["$ref"].(string); ok {
			s, _ = openapiResolve(doc, r).(map[string]any)
		} else if all, ok := s["allOf"].([]any); ok && len(all) == 1 && s["type"] == nil {
			s, _ = all[0].(map[string]any)
		} else {
			break
		}
	}
	return s
}

// TestOpenAPIErrorCodes checks the documented error codes against the code:
// every rule code of fablab and every code the status table maps is
// documented, and each documented code is answered with the status its
// response is listed under.
func TestOpenAPIErrorCodes(t *testing.T) {
	doc := openapiParse(t)
	documented := map[string]bool{}
	for _, o := range openapiOperations(doc) {
		rs, _ := o.Op["responses"].(map[string]any)
		for status, r := range rs {
			rm := openapiSchemaOf(doc, r.(map[string]any))
			content, _ := rm["content"].(map[string]any)
			pj, ok := content["application/problem+json"].(map[string]any)
			if !ok {
				continue
			}
			for _, code := range problemCodes(doc, pj["schema"].(map[string]any)) {
				documented[code] = true
				want, ok := statusOf[code]
				if !ok {
					want = http.StatusUnprocessableEntity
				}
				if status != strconv.Itoa(want) {
					t.Errorf("%s lists code %s under %s; the server answers it with %d", o, code, status, want)
				}
			}
		}
	}
	var want []string
	for code := range statusOf {
		switch code {
		case fablab.EINTERNAL, fablab.ECONFLICT, "method_not_allowed": // not tied to an operation
		default:
			want = append(want, code)
		}
	}
	want = append(want, fablabRuleCodes(t)...)
	for _, code := range want {
		if !documented[code] {
			t.Errorf("error code %s is not documented in any response", code)
		}
	}
}

// problemCodes returns the code enum of a problem response schema.
func problemCodes(doc map[string]any, s map[string]any) []string {
	var codes []string
	all, _ := s["allOf"].([]any)
	for _, part := range all {
		props, _ := openapiSchemaOf(doc, part.(map[string]any))["properties"].(map[string]any)
		code, _ := props["code"].(map[string]any)
		enum, _ := code["enum"].([]any)
		for _, c := range enum {
			codes = append(codes, c.(string))
		}
	}
	return codes
}

// fablabRuleCodes returns the values of the Code* constants of fablab/errors.go.
func fablabRuleCodes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../fablab/errors.go", nil, 0)
	if err != nil {
		t.Fatalf("parse fablab/errors.go: %v", err)
	}
	var codes []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if i >= len(vs.Values) {
				break
			}
			if lit, ok := vs.Values[i].(*ast.BasicLit); ok && strings.HasPrefix(name.Name, "Code") && lit.Kind == token.STRING {
				v, _ := strconv.Unquote(lit.Value)
				codes = append(codes, v)
			}
		}
		return true
	})
	if len(codes) == 0 {
		t.Fatal("found no Code* constants in fablab/errors.go")
	}
	return codes
}
