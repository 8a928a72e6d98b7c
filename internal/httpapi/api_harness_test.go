package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/bolt/bolttest"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/lab"
	"github.com/fabgate/fabgate/internal/mail"
	"github.com/fabgate/fabgate/internal/mqtt"
)

// The tests of this package run the real thing: a bbolt file in t.TempDir(),
// the real Gin engine behind httptest.NewServer, real HTTP requests and a
// settable clock that tests move instead of sleeping.

// apiCheapPassword makes argon2id cheap enough for tests.
var apiCheapPassword = auth.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// apiLabName is the seeded lab's name, shown on the landing page.
const apiLabName = "FabLab Parc Tech"

var apiParis = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		panic(err)
	}
	return loc
}()

// apiStart is when every harness clock starts: Monday 2026-03-02 08:00 in
// Paris, an hour before the lab opens.
var apiStart = apiAt(0, 8, 0)

// apiAt returns day days after Monday 2026-03-02 at hh:mm, Paris time.
func apiAt(day, hh, mm int) time.Time {
	return time.Date(2026, 3, 2+day, hh, mm, 0, 0, apiParis)
}

// apiAccount is a seeded member with its password and a bearer token.
type apiAccount struct {
	fablab.Member
	Password string
	Token    string
	CSRF     string
}

// apiHarness is a seeded lab served over HTTP.
type apiHarness struct {
	clock  *bolttest.Clock
	store  *bolt.Store
	server *Server
	srv    *httptest.Server
	client *http.Client

	admin, staff, alice, bob *apiAccount // alice is qualified for the laser, bob is not

	training fablab.Training
	laser    fablab.Machine // requires the training
	printer  fablab.Machine // requires nothing
	cnc      fablab.Machine // weekly quota of 120 minutes

	lab *lab.Lab // the access side, when newAPIAccessHarness started one

	outbox *mail.Outbox // the mail the server sent (newAPIHarness)

	seq  atomic.Int64 // for unique names
	slot atomic.Int64 // for nextSlot
}

// newAPIHarness opens a store, seeds it, serves it and logs the four accounts in.
func newAPIHarness(t testing.TB) *apiHarness {
	t.Helper()
	ctx := context.Background()
	h := &apiHarness{clock: bolttest.NewClock(apiStart)}
	h.store = bolttest.Open(t, h.clock.Now)

	if _, err := h.store.UpdateSettings(ctx, func(s *fablab.Settings) error {
		s.Name = apiLabName
		return nil
	}); err != nil {
		t.Fatalf("seed settings: %v", err)
	}
	var err error
	if h.training, err = h.store.CreateTraining(ctx, fablab.Training{Name: "Laser safety"}); err != nil {
		t.Fatalf("seed training: %v", err)
	}
	h.laser = apiSeedMachine(t, h.store, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter, RequiredTrainings: []fablab.ID{h.training.ID}})
	h.printer = apiSeedMachine(t, h.store, fablab.Machine{Name: "Printer", Kind: fablab.Kind3DPrinter})
	quota := fablab.DefaultBookingRules()
	quota.WeeklyQuotaMinutes = 120
	h.cnc = apiSeedMachine(t, h.store, fablab.Machine{Name: "CNC", Kind: fablab.KindCNC, Rules: quota})

	h.admin = apiSeedMember(t, h.store, "admin@fablab.test", "Ada Admin", fablab.RoleAdmin, "staff", "admin password")
	h.staff = apiSeedMember(t, h.store, "staff@fablab.test", "Sam Staff", fablab.RoleStaff, "staff", "staff password")
	h.alice = apiSeedMember(t, h.store, "alice@fablab.test", "Alice Maker", fablab.RoleMaker, "student", "alice password")
	h.bob = apiSeedMember(t, h.store, "bob@fablab.test", "Bob Maker", fablab.RoleMaker, "sme", "bob password")
	if _, err := h.store.GrantQualification(ctx, fablab.Qualification{MemberID: h.alice.ID, TrainingID: h.training.ID, GrantedBy: h.admin.ID}); err != nil {
		t.Fatalf("seed qualification: %v", err)
	}

	h.server, err = New(Config{
		Store:     h.store,
		Now:       h.clock.Now,
		Registry:  prometheus.NewRegistry(),
		Version:   "test",
		Password:  apiCheapPassword,
		PublicURL: apiPublicURL,
		Mail:      h.startMail(t),
	})
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	h.srv = httptest.NewServer(h.server.Handler())
	h.client = h.srv.Client()
	t.Cleanup(h.srv.Close)

	for _, a := range []*apiAccount{h.admin, h.staff, h.alice, h.bob} {
		a.Token, a.CSRF = h.login(t, a)
	}
	return h
}

func apiSeedMachine(t testing.TB, s *bolt.Store, m fablab.Machine) fablab.Machine {
	t.Helper()
	m, err := s.CreateMachine(context.Background(), m)
	if err != nil {
		t.Fatalf("seed machine %s: %v", m.Name, err)
	}
	return m
}

func apiSeedMember(t testing.TB, s *bolt.Store, email, name string, role fablab.Role, group, password string) *apiAccount {
	t.Helper()
	m := fablab.Member{Email: email, Name: name, Role: role, Group: group}
	if password != "" {
		hash, err := auth.HashPassword(apiCheapPassword, password)
		if err != nil {
			t.Fatalf("hash password: %v", err)
		}
		m.PasswordHash = hash
	}
	m, err := s.CreateMember(context.Background(), m)
	if err != nil {
		t.Fatalf("seed member %s: %v", email, err)
	}
	return &apiAccount{Member: m, Password: password}
}

// login logs a in over HTTP and returns a new bearer token and its CSRF secret.
func (h *apiHarness) login(t testing.TB, a *apiAccount) (token, csrf string) {
	t.Helper()
	r := h.do(t, "POST", "/api/v1/auth/login", "", map[string]string{"email": a.Email, "password": a.Password})
	if r.status != http.StatusOK {
		t.Fatalf("login %s: %d %s", a.Email, r.status, r.body)
	}
	var lr loginResponse
	r.decode(t, &lr)
	return lr.Token, lr.CSRFToken
}

// uniq returns a new small number, for names that must not repeat.
func (h *apiHarness) uniq() int64 { return h.seq.Add(1) }

// nextSlot returns the start of a half hour after from not returned before.
func (h *apiHarness) nextSlot(from time.Time) time.Time {
	return from.Add(apiMinutes(30 * int(h.slot.Add(1)-1)))
}

// apiMinutes is n minutes.
func apiMinutes(n int) time.Duration { return time.Duration(n) * time.Minute }

// seedBooking stores a confirmed booking directly, bypassing the rules.
func (h *apiHarness) seedBooking(t testing.TB, machine fablab.ID, member *apiAccount, start, end time.Time) fablab.Booking {
	t.Helper()
	b, err := h.store.CreateBooking(context.Background(),
		fablab.Booking{MachineID: machine, MemberID: member.ID, Start: start, End: end, CreatedBy: member.ID},
		func(bolt.BookingContext) error { return nil })
	if err != nil {
		t.Fatalf("seed booking: %v", err)
	}
	return b
}

// apiReq is one HTTP request of a test.
type apiReq struct {
	method, path string
	token        string // sent as a bearer token when not empty
	// body is sent as is when it is a string or []byte, as JSON otherwise;
	// nil sends no body.
	body        any
	contentType string // application/json when empty and there is a body; "-" for none
	header      http.Header
}

// apiResp is a fully read response.
type apiResp struct {
	status int
	header http.Header
	body   []byte
	cookie []*http.Cookie
}

// do sends a request with an optional bearer token and body.
func (h *apiHarness) do(t testing.TB, method, path, token string, body any) apiResp {
	t.Helper()
	return h.send(t, apiReq{method: method, path: path, token: token, body: body})
}

// send sends rq to the real server. Every response is checked for what must
// always hold: no 5xx, and errors as application/problem+json.
func (h *apiHarness) send(t testing.TB, rq apiReq) apiResp {
	t.Helper()
	return apiSendWith(t, h.client, h.srv.URL, rq)
}

func apiSendWith(t testing.TB, client *http.Client, base string, rq apiReq) apiResp {
	t.Helper()
	r, err := apiRoundTrip(client, base, rq)
	if err != nil {
		t.Fatal(err)
	}
	apiCheckAlways(t, rq.method+" "+rq.path, r.status, r.header, r.body)
	return r
}

// apiRoundTrip sends rq and reads the whole response. It does not use a
// testing.TB, so that any goroutine may call it.
func apiRoundTrip(client *http.Client, base string, rq apiReq) (apiResp, error) {
	var body io.Reader
	if rq.body != nil {
		switch b := rq.body.(type) {
		case string:
			body = strings.NewReader(b)
		case []byte:
			body = bytes.NewReader(b)
		default:
			data, err := json.Marshal(b)
			if err != nil {
				return apiResp{}, fmt.Errorf("marshal request body: %w", err)
			}
			body = bytes.NewReader(data)
		}
	}
	req, err := http.NewRequest(rq.method, base+rq.path, body)
	if err != nil {
		return apiResp{}, err
	}
	for k, vs := range rq.header {
		req.Header[k] = vs
	}
	switch {
	case rq.contentType == "-":
	case rq.contentType != "":
		req.Header.Set("Content-Type", rq.contentType)
	case rq.body != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	res, err := client.Do(req)
	if err != nil {
		return apiResp{}, fmt.Errorf("%s %s: %w", rq.method, rq.path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return apiResp{}, fmt.Errorf("%s %s: read body: %w", rq.method, rq.path, err)
	}
	return apiResp{status: res.StatusCode, header: res.Header, body: data, cookie: res.Cookies()}, nil
}

// apiCheckAlways checks what every response must satisfy: never a 5xx, and
// every error an RFC 9457 problem with a code and the same status.
func apiCheckAlways(t testing.TB, what string, status int, header http.Header, body []byte) {
	t.Helper()
	if status >= 500 {
		t.Errorf("%s: status %d (never a 5xx): %s", what, status, body)
	}
	if ct := header.Get("Content-Type"); strings.Contains(ct, "json") && bytes.Contains(body, []byte("$argon2id$")) {
		t.Errorf("%s: the response shows a password hash", what)
	}
	if status < 400 {
		return
	}
	if ct := header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: status %d with Content-Type %q, want application/problem+json", what, status, ct)
		return
	}
	var p Problem
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Errorf("%s: problem body %q does not decode: %v", what, body, err)
		return
	}
	if p.Status != status || p.Code == "" || p.Title == "" || p.Detail == "" || p.Type == "" {
		t.Errorf("%s: incomplete problem for status %d: %+v", what, status, p)
	}
}

// decode decodes a JSON response body into v.
func (r apiResp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// problem returns the problem document of an error response.
func (r apiResp) problem(t testing.TB) Problem {
	t.Helper()
	var p Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("not a problem document: %q", r.body)
	}
	return p
}

// want checks the status and, for errors, the problem code.
func (r apiResp) want(t testing.TB, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d (body %s)", r.status, status, apiShort(r.body))
		return
	}
	if status >= 400 {
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("Content-Type %q, want application/problem+json", ct)
		}
		if p := r.problem(t); p.Code != code {
			t.Errorf("code %q, want %q (%s)", p.Code, code, p.Detail)
		}
	}
}

func apiShort(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// apiBookingBody is the JSON body of POST /bookings.
func apiBookingBody(machine fablab.ID, start, end time.Time) map[string]any {
	return map[string]any{"machine_id": machine.String(), "start": start.Format(time.RFC3339), "end": end.Format(time.RFC3339)}
}

// book posts a booking as a and returns the response.
func (h *apiHarness) book(t testing.TB, a *apiAccount, machine fablab.ID, start, end time.Time) apiResp {
	t.Helper()
	return h.do(t, "POST", "/api/v1/bookings", a.Token, apiBookingBody(machine, start, end))
}

// apiState is what tests compare to prove that nothing was written.
type apiState struct {
	members, bookings, machines, trainings, organisations int
	digest                                                [32]byte // of a full snapshot of the file
}

// state counts the stored entities and digests the whole file.
func (h *apiHarness) state(t testing.TB) apiState {
	t.Helper()
	ctx := context.Background()
	var st apiState
	var err error
	if st.members, err = h.store.CountMembers(ctx); err != nil {
		t.Fatal(err)
	}
	ms, err := h.store.Machines(ctx, 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	st.machines = len(ms.Items)
	for _, m := range ms.Items {
		bs, err := h.store.Bookings(ctx, bolt.BookingFilter{MachineID: m.ID, From: time.Unix(0, 0), To: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		st.bookings += len(bs)
	}
	ts, err := h.store.Trainings(ctx, 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	st.trainings = len(ts.Items)
	orgs, err := h.store.Organisations(ctx, 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	st.organisations = len(orgs.Items)
	sum := sha256.New()
	if _, err := h.store.WriteTo(sum); err != nil {
		t.Fatal(err)
	}
	copy(st.digest[:], sum.Sum(nil))
	return st
}

// unchanged fails the test if anything was written since before.
func (h *apiHarness) unchanged(t testing.TB, before apiState) {
	t.Helper()
	after := h.state(t)
	if after != before {
		t.Errorf("the store changed: before %s, after %s", before, after)
	}
}

func (s apiState) String() string {
	return fmt.Sprintf("{members %d, bookings %d, machines %d, trainings %d, organisations %d, file %x}",
		s.members, s.bookings, s.machines, s.trainings, s.organisations, s.digest[:4])
}

// newAPIAccessHarness is newAPIHarness with the access side running, as
// fabgate serve runs it: the embedded MQTT broker on a random port, the
// server's MQTT client, the access engine on the harness clock (its
// schedule left to the test: nothing retries or sweeps behind its back),
// live events, device secrets hashed for Mosquitto, and simulated taps when
// simulate is set. Tests without devices use newAPIHarness and start no
// broker.
func newAPIAccessHarness(t testing.TB, simulate bool) *apiHarness {
	t.Helper()
	h := newAPIHarness(t)
	l, err := lab.Start(context.Background(), lab.Config{Store: h.store, Listen: "127.0.0.1:0", Now: h.clock.Now, Manual: true})
	if err != nil {
		t.Fatalf("start the access side: %v", err)
	}
	t.Cleanup(l.Close)
	h.lab = l
	// The same store (and so the same logins) behind a server that has the
	// access side; the first server is closed.
	h.srv.Close()
	h.server, err = New(Config{
		Store:            h.store,
		Now:              h.clock.Now,
		Registry:         prometheus.NewRegistry(),
		Version:          "test",
		Password:         apiCheapPassword,
		Access:           l.Engine,
		Hub:              l.Hub,
		HashDeviceSecret: mqtt.MosquittoPasswordHash,
		Connections:      l.Broker,
		SimulateTaps:     simulate,
		PublicURL:        apiPublicURL,
		Mail:             h.startMail(t),
		Jobs:             l.Jobs,
	})
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	h.srv = httptest.NewServer(h.server.Handler())
	h.client = h.srv.Client()
	t.Cleanup(h.srv.Close) // before the lab closes: cleanups run last first
	return h
}

// seedDevice stores a device with a throwaway secret, bound to machine
// unless it is 0.
func (h *apiHarness) seedDevice(t testing.TB, id string, machine fablab.ID) fablab.Device {
	t.Helper()
	hash, err := mqtt.MosquittoPasswordHash(auth.NewToken())
	if err != nil {
		t.Fatal(err)
	}
	d, err := h.store.CreateDevice(context.Background(), fablab.Device{ID: id, Kind: fablab.DeviceBridge, MachineID: machine, SecretHash: hash})
	if err != nil {
		t.Fatalf("seed device %s: %v", id, err)
	}
	return d
}

// sendCut sends rq like send, but an event stream (text/event-stream) is
// read only up to the end of its first event block and then hung up on, so
// that a request to GET /events returns. Other responses are read whole.
func (h *apiHarness) sendCut(t testing.TB, rq apiReq) apiResp {
	t.Helper()
	return apiSendWith(t, &http.Client{Transport: apiFirstEventBlock{h.client.Transport}}, h.srv.URL, rq)
}

// apiFirstEventBlock is a RoundTripper that cuts event streams after their
// first block (a comment or an event, up to its blank line), within 10 s.
type apiFirstEventBlock struct{ rt http.RoundTripper }

// RoundTrip sends req and, for an event stream, reads its first block.
func (f apiFirstEventBlock) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	res, err := f.rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		// Read it now: the body must outlive this call's deadline.
		data, err := io.ReadAll(res.Body)
		res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(data))
		return res, err
	}
	defer res.Body.Close()
	var block bytes.Buffer
	r := bufio.NewReader(res.Body)
	for {
		line, err := r.ReadString('\n')
		block.WriteString(line)
		if err != nil {
			return nil, fmt.Errorf("%s %s: the event stream ended before its first block: %w", req.Method, req.URL.Path, err)
		}
		if line == "\n" {
			break
		}
	}
	res.Body = io.NopCloser(&block)
	return res, nil
}

// openSession opens a session for a on a new machine of its own through the
// API, as the demo lab does: a device bound to the machine, a new badge
// enrolled to a, and a simulated tap of it (the harness must allow them).
func (h *apiHarness) openSession(t testing.TB, a *apiAccount) fablab.Session {
	t.Helper()
	n := h.uniq()
	m := apiSeedMachine(t, h.store, fablab.Machine{Name: fmt.Sprintf("Lathe %d", n), Kind: "lathe"})
	d := h.seedDevice(t, fmt.Sprintf("lathe-%d", n), m.ID)
	uid := fmt.Sprintf("04:5E:%06X", n)
	h.do(t, "POST", "/api/v1/members/"+a.ID.String()+"/badges", h.staff.Token, map[string]any{"uid": uid}).want(t, http.StatusCreated, "")
	r := h.do(t, "POST", "/api/v1/devices/"+d.ID+"/tap", h.staff.Token, map[string]any{"uid": uid})
	r.want(t, http.StatusOK, "")
	var tr tapResult
	r.decode(t, &tr)
	if tr.Decision != "grant" {
		t.Fatalf("tap on %s: %+v, want grant", d.ID, tr)
	}
	sess, err := h.store.OpenSessionOn(context.Background(), m.ID)
	if err != nil {
		t.Fatalf("the granted tap opened no session: %v", err)
	}
	return sess
}

// apiRefusal is a request that must be refused, with the status and code
// expected, and nothing written.
type apiRefusal struct {
	name   string
	as     *apiAccount
	rq     apiReq
	status int
	code   string
}

// apiCheckRefusals runs each refusal as its own subtest: the status and
// code are checked, the store must be unchanged, and the problem's detail
// must contain details[name] where given (every key naming a case).
func apiCheckRefusals(t *testing.T, h *apiHarness, cases []apiRefusal, details map[string]string) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("two cases named %q", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			if c.as != nil {
				c.rq.token = c.as.Token
			}
			before := h.state(t)
			res := h.send(t, c.rq)
			res.want(t, c.status, c.code)
			h.unchanged(t, before)
			if want, ok := details[c.name]; ok && res.status >= 400 {
				if d := res.problem(t).Detail; !strings.Contains(d, want) {
					t.Errorf("detail %q does not say %q", d, want)
				}
			}
		})
	}
	for name := range details {
		if !seen[name] {
			t.Errorf("details for %q, which is not a case", name)
		}
	}
}
