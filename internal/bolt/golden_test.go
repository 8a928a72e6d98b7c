package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/fabgate/fabgate/internal/fablab"
)

var update = flag.Bool("update", false, "rewrite the golden files of the stored format (testdata/schema-vN) from what the store writes now")

// goldenNow is the fixed clock of the stored-format test.
var goldenNow = time.Date(2026, 3, 3, 9, 30, 0, 0, time.UTC)

// jsonRecords names the Go type of the JSON values of each bucket (and of
// the JSON keys of meta/), so the test can check that the representative
// records below set every field: a field the records leave out (an empty
// omitempty field) would be renamed unnoticed.
var jsonRecords = map[string]reflect.Type{
	"members":        reflect.TypeFor[memberRecord](),
	"organisations":  reflect.TypeFor[fablab.Organisation](),
	"trainings":      reflect.TypeFor[fablab.Training](),
	"qualifications": reflect.TypeFor[fablab.Qualification](),
	"badges":         reflect.TypeFor[fablab.Badge](),
	"machines":       reflect.TypeFor[fablab.Machine](),
	"bookings":       reflect.TypeFor[fablab.Booking](),
	"tokens":         reflect.TypeFor[Token](),
	"resets":         reflect.TypeFor[PasswordReset](),
	"feeds_member":   reflect.TypeFor[feedRecord](),
	"devices":        reflect.TypeFor[deviceRecord](),
	"sessions":       reflect.TypeFor[fablab.Session](),
	"audit":          reflect.TypeFor[fablab.AuditEvent](),
	"charges":        reflect.TypeFor[fablab.Charge](),
	"invoices":       reflect.TypeFor[fablab.Invoice](),
	"invoice_runs":   reflect.TypeFor[invoiceRun](),
	"payments":       reflect.TypeFor[fablab.Payment](),
	"meta/settings":  reflect.TypeFor[fablab.Settings](),
	"meta/tariffs":   reflect.TypeFor[[]fablab.TariffGroup](),
}

// neverStored lists the JSON fields of record types that the store never
// writes, with why.
var neverStored = map[string][]string{
	"devices": {"machine_id"}, // the binding lives in machines/ and machine_device/
}

// randomValues are meta/ keys whose values are random at each new file:
// the golden files show their length only.
var randomValues = map[string]bool{"secret": true, "mqtt_server_password": true}

// TestStoredFormat writes one representative record of every kind through
// the store's public methods, with fixed ids and a fixed clock, and compares
// the bytes in the bbolt file, bucket by bucket, with the golden files of
// the current schema version (testdata/schema-vN/<bucket>.golden).
//
// The stored values are JSON encodings of the domain and API types: renaming
// or retyping a field of one of them changes the file format, and this test
// fails. Then either the change is a new schema version, with a migration
// that converts the old records (and new golden files in a new
// testdata/schema-vN, the old ones kept), or it is compatible and the golden
// files are refreshed deliberately with
//
//	go test ./internal/bolt -run TestStoredFormat -update
func TestStoredFormat(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "fabgate.db"), Options{Now: func() time.Time { return goldenNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeRepresentativeRecords(t, s)

	dir := filepath.Join("testdata", fmt.Sprintf("schema-v%d", SchemaVersion))
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err = s.db.View(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			b := tx.Bucket(name)
			if b == nil {
				t.Errorf("bucket %s is missing", name)
				continue
			}
			got := dumpBucket(string(name), b)
			path := filepath.Join(dir, string(name)+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					return err
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("no golden file for bucket %s at schema %d (%v): a new schema version needs its golden files; write them with -update", name, SchemaVersion, err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("the stored format of bucket %s changed (schema %d):\n%s\nBump the schema version with a migration, or, if old files still read the same, refresh the golden files with -update.",
					name, SchemaVersion, lineDiff(want, got))
			}
			checkEveryFieldStored(t, string(name), b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// writeRepresentativeRecords fills every bucket through the public methods,
// setting every field of every record type at least once.
func writeRepresentativeRecords(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	at := func(m int) time.Time { return goldenNow.Add(time.Duration(m) * time.Minute) }
	ptr := func(t time.Time) *time.Time { return &t }
	key := func(b byte) (k [32]byte) {
		for i := range k {
			k[i] = b
		}
		return k
	}

	_, err := s.UpdateSettings(ctx, func(st *fablab.Settings) error {
		st.Name = "FabLab Golden"
		st.LegalName, st.Address, st.SIRET, st.VATNumber = "Association FabLab Golden", "2 place du Marché, 75001 Paris", "12345678900011", "FR99123456789"
		st.LatePenalty, st.FreeUnderMinutes = "Pénalités : 3 fois le taux légal", 2
		st.Closures = []fablab.Closure{{From: fablab.Date{Year: 2026, Month: 12, Day: 24}, To: fablab.Date{Year: 2027, Month: 1, Day: 1}, Reason: "Fêtes"}}
		return nil
	})
	must(err)
	_, err = s.PutTariffGroups(ctx, append(fablab.DefaultTariffGroups(), fablab.TariffGroup{ID: "partner", Name: "Partner", Description: "Partner schools"}))
	must(err)
	_, err = s.ServerMQTTPassword(ctx)
	must(err)

	org, err := s.CreateOrganisation(ctx, fablab.Organisation{Name: "Acme SAS", Group: "sme", BillingAddress: "1 rue de la Paix, Paris", VATNumber: "FR00123456789"})
	must(err)
	tr, err := s.CreateTraining(ctx, fablab.Training{Name: "Laser safety", Description: "Fumes, fire, focus", ValidityMonths: 12})
	must(err)
	staff, err := s.CreateMember(ctx, fablab.Member{Email: "sam@lab.example", Name: "Sam", Role: fablab.RoleStaff, Group: "staff", Language: "fr", PasswordHash: "$argon2id$staff"})
	must(err)
	ada, err := s.CreateMember(ctx, fablab.Member{Email: "ada@acme.example", Name: "Ada", Group: "sme", OrganisationID: org.ID, Payer: fablab.PayerOrganisation,
		MembershipUntil: ptr(at(365 * 24 * 60)), PrepaidMinutes: 120, Language: "en", PasswordHash: "$argon2id$old"})
	must(err)
	_, err = s.UpdateMember(ctx, ada.ID, func(m *fablab.Member) error { m.PasswordHash = "$argon2id$new"; return nil }) // session_gen 1
	must(err)
	_, err = s.GrantQualification(ctx, fablab.Qualification{MemberID: ada.ID, TrainingID: tr.ID, GrantedBy: staff.ID, ExpiresAt: ptr(at(180 * 24 * 60))})
	must(err)
	_, err = s.AddBadge(ctx, fablab.Badge{Hash: "35a41fbf7722026a581a4e6b358327862c24f6a85f4914653afd0cae933acf10", MemberID: ada.ID, Label: "blue fob"})
	must(err)

	st, err := s.Settings(ctx)
	must(err)
	laser, err := s.CreateMachine(ctx, fablab.Machine{Name: "Laser", Kind: fablab.KindLaserCutter, Description: "CO2, 60 W",
		RequiredTrainings: []fablab.ID{tr.ID}, Rules: st.DefaultRules, Prices: map[string]int64{"sme": 3000, "student": 1000},
		MinimumChargeCents: 200, NoShowFeeCents: 500, GraceMinutes: 10, IdlePowerW: 25.5,
		Maintenance: []fablab.MaintenanceBlock{{Start: at(7 * 24 * 60), End: at(7*24*60 + 120), Reason: "lens"}}})
	must(err)
	_, err = s.CreateDevice(ctx, fablab.Device{ID: "laser-1", MachineID: laser.ID, Kind: fablab.DeviceBridge, SecretHash: "$7$mosquitto-hash"})
	must(err)
	_, _, err = s.ReserveSeq(ctx, "laser-1")
	must(err)

	accept := func(BookingContext) error { return nil }
	reminded, err := s.CreateBooking(ctx, fablab.Booking{MachineID: laser.ID, MemberID: ada.ID, Start: at(60), End: at(120), CreatedBy: staff.ID}, accept)
	must(err)
	_, err = s.MarkReminded(ctx, reminded.ID, at(1))
	must(err)
	cancelled, err := s.CreateBooking(ctx, fablab.Booking{MachineID: laser.ID, MemberID: ada.ID, Start: at(180), End: at(240), CreatedBy: ada.ID}, accept)
	must(err)
	_, err = s.SetBookingState(ctx, cancelled.ID, fablab.BookingCancelled, staff.ID, func(fablab.Machine, fablab.Booking) error { return nil })
	must(err)

	must(s.PutToken(ctx, key(1), Token{MemberID: ada.ID, CSRF: "csrf-secret", CreatedAt: at(0), ExpiresAt: at(60 * 24)}))
	must(s.PutPasswordReset(ctx, key(2), PasswordReset{MemberID: ada.ID, CreatedBy: staff.ID, ExpiresAt: at(72 * 60)}))
	_, err = s.PutCalendarFeed(ctx, ada.ID, key(3)) // replaced by the next one
	must(err)
	_, err = s.PutCalendarFeed(ctx, ada.ID, key(4))
	must(err)

	// A session ended by staff, one still open, and one a device ran alone.
	ev := func(action string) []fablab.AuditEvent {
		return []fablab.AuditEvent{{At: at(1), Kind: fablab.AuditTap, Action: action, ActorID: staff.ID, Reason: "because",
			Detail: map[string]any{"msg_id": "m-" + action, "n": 2}}}
	}
	sess, err := s.OpenSession(ctx, fablab.Session{MachineID: laser.ID, MemberID: ada.ID, DeviceID: "laser-1", Started: at(1), Until: at(61), TapMsgID: "m-1", CmdID: "cmd-1", Billable: true},
		&TapRef{Device: "laser-1", MsgID: "m-1", At: at(1)}, ev("granted"))
	must(err)
	_, err = s.UpdateSession(ctx, sess.ID, func(x *fablab.Session) { x.Confirmed = true })
	must(err)
	_, err = s.CloseSession(ctx, sess.ID, at(30), fablab.EndStaff, staff.ID, nil, nil)
	must(err)
	_, err = s.OpenSession(ctx, fablab.Session{MachineID: laser.ID, MemberID: ada.ID, DeviceID: "laser-1", Started: at(31), Until: at(91), Billable: true}, nil, nil)
	must(err)
	_, err = s.RecordSession(ctx, fablab.Session{MachineID: laser.ID, MemberID: ada.ID, BookingID: cancelled.ID, DeviceID: "laser-1", Started: at(-120), Until: at(-60),
		Ended: ptr(at(-90)), EndReason: fablab.EndTapOut, Offline: true, TapMsgID: "off-1", Confirmed: true, Billable: true, ChargeID: 7},
		&TapRef{Device: "laser-1", MsgID: "off-1", At: at(2)}, ev("replayed"))
	must(err)
	must(s.Audit(ctx, fablab.AuditEvent{At: at(3), Kind: fablab.AuditDevice, Action: "created", ActorID: staff.ID, MemberID: ada.ID, MachineID: laser.ID,
		DeviceID: "laser-1", SessionID: sess.ID, Reason: "setup", Detail: map[string]any{"kind": "bridge"}}))
	must(s.RememberUnknownTap(ctx, fablab.UnknownTap{Hash: "5aa7f7bb6909a5995ba3ce3a906592f2d6c1ef4e281c99707b5cc7b8e53c98a6", At: at(4), DeviceID: "laser-1"}))

	// The ledger: staff use the laser free; Ada's sessions take her
	// prepaid minutes, then cost; her booking at 60 is a no-show (fee).
	staffSess, err := s.RecordSession(ctx, fablab.Session{MachineID: laser.ID, MemberID: staff.ID, DeviceID: "laser-1", Started: at(-300), Until: at(-240),
		Ended: ptr(at(-250)), EndReason: fablab.EndTapOut, Confirmed: true, Billable: true}, nil, nil)
	must(err)
	_, err = s.RecordSession(ctx, fablab.Session{MachineID: laser.ID, MemberID: ada.ID, DeviceID: "laser-1", Started: at(-230), Until: at(-130),
		Ended: ptr(at(-135)), EndReason: fablab.EndTapOut, Confirmed: true, Billable: true}, nil, nil)
	must(err)
	billed, left, err := s.BillSessions(ctx, 100)
	must(err)
	if billed != 4 || left != 0 {
		t.Fatalf("billed %d sessions, %d left; want 4 and 0", billed, left)
	}
	_, err = s.MarkNoShows(ctx, at(60+16), time.Hour)
	must(err)
	staffCharge, err := s.Session(ctx, staffSess.ID)
	must(err)
	_, err = s.AddCorrection(ctx, staffCharge.ChargeID, 100, "consumables", staff.ID)
	must(err)
	s.now = func() time.Time { return time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC) }
	invs, _, err := s.RunInvoices(ctx, fablab.Period{Year: 2026, Month: time.March})
	must(err)
	if len(invs) != 2 {
		t.Fatalf("%d invoices, want Acme's and Sam's", len(invs))
	}
	_, err = s.CreditNote(ctx, invs[0].ID, 100, -1, "geste commercial", staff.ID)
	must(err)
	_, err = s.MarkPaid(ctx, invs[1].ID, fablab.Date{Year: 2026, Month: time.April, Day: 1}, "transfer", "VIR-42", staff.ID)
	must(err)
}

// dumpBucket writes a bucket's records one a line, key then value, exactly:
// printable keys quoted, others in hex; JSON values as stored, others in
// hex; random values by their length only.
func dumpBucket(name string, b *bbolt.Bucket) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# bucket %s/ at schema %d, as TestStoredFormat writes it: key<TAB>value, one record a line\n", name, SchemaVersion)
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var val string
		switch {
		case v == nil:
			val = "<bucket>"
		case name == "meta" && randomValues[string(k)]:
			val = fmt.Sprintf("<%d random bytes>", len(v))
		case isJSON(name, k):
			val = string(v)
		default:
			val = "hex:" + hex.EncodeToString(v)
		}
		fmt.Fprintf(&buf, "%s\t%s\n", showKey(k), val)
	}
	return buf.Bytes()
}

func isJSON(bucket string, k []byte) bool {
	if bucket == "meta" {
		return jsonRecords["meta/"+string(k)] != nil
	}
	return jsonRecords[bucket] != nil
}

func showKey(k []byte) string {
	for _, c := range k {
		if c < 0x21 || c > 0x7e {
			return "hex:" + hex.EncodeToString(k)
		}
	}
	return strconv.Quote(string(k))
}

// checkEveryFieldStored checks that the records of a JSON bucket hold every
// field of their type (nested structs included) at least once.
func checkEveryFieldStored(t *testing.T, bucket string, b *bbolt.Bucket) {
	t.Helper()
	seen := map[string]map[string]bool{} // record type key → JSON keys seen
	b.ForEach(func(k, v []byte) error {
		name := bucket
		if bucket == "meta" {
			name = "meta/" + string(k)
		}
		if jsonRecords[name] == nil {
			return nil
		}
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			t.Errorf("%s %s: not JSON: %v", name, showKey(k), err)
			return nil
		}
		if seen[name] == nil {
			seen[name] = map[string]bool{}
		}
		collectKeys(x, seen[name])
		return nil
	})
	for name, typ := range jsonRecords {
		if name != bucket && (bucket != "meta" || !strings.HasPrefix(name, "meta/")) {
			continue
		}
		for _, f := range fieldNames(typ, nil) {
			if !seen[name][f] && !slices.Contains(neverStored[name], f) {
				t.Errorf("%s: no representative record sets field %q of %s: set it in writeRepresentativeRecords, so that its name is in the golden file", name, f, typ)
			}
		}
	}
}

func collectKeys(x any, into map[string]bool) {
	switch x := x.(type) {
	case map[string]any:
		for k, v := range x {
			into[k] = true
			collectKeys(v, into)
		}
	case []any:
		for _, v := range x {
			collectKeys(v, into)
		}
	}
}

var textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
var jsonMarshaler = reflect.TypeFor[json.Marshaler]()

// fieldNames returns the JSON names of typ's fields, nested structs
// included; types with their own encoding (time.Time, fablab.Date) are
// leaves.
func fieldNames(typ reflect.Type, out []string) []string {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array || typ.Kind() == reflect.Map {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct || typ.Implements(jsonMarshaler) || reflect.PointerTo(typ).Implements(jsonMarshaler) ||
		typ.Implements(textMarshaler) || reflect.PointerTo(typ).Implements(textMarshaler) {
		return out
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			out = fieldNames(f.Type, out)
			continue
		}
		if name == "" {
			name = f.Name
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
		out = fieldNames(f.Type, out)
	}
	return out
}

// lineDiff shows the lines of want and got that differ.
func lineDiff(want, got []byte) string {
	w, g := bytes.Split(want, []byte("\n")), bytes.Split(got, []byte("\n"))
	var buf bytes.Buffer
	for i := range max(len(w), len(g)) {
		var a, b []byte
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if !bytes.Equal(a, b) {
			fmt.Fprintf(&buf, "line %d:\n  golden: %s\n  stored: %s\n", i+1, a, b)
		}
	}
	return buf.String()
}

// TestGoldenFilesOpen builds a data file from the golden files of every
// schema version kept in testdata (the current one and the older ones, kept
// when the schema is bumped) and opens it with this code: the migrations
// run, and every record reads back through the store's methods. The
// current version's files thus also prove that what the store writes, it
// reads; an older version's, that its migration still converts it.
func TestGoldenFilesOpen(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "schema-v*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no golden files in testdata/schema-v*")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fabgate.db")
			counts := loadGolden(t, dir, path)
			s, err := Open(path, Options{Now: func() time.Time { return goldenNow }})
			if err != nil {
				t.Fatalf("open a schema file built from %s: %v", dir, err)
			}
			defer s.Close()
			checkReadsBack(t, s, counts)
			if err := s.Check(); err != nil {
				t.Errorf("consistency check: %v", err)
			}
		})
	}
}

// loadGolden writes the records of the golden files of dir into a new bbolt
// file at path and returns how many records each bucket holds.
func loadGolden(t *testing.T, dir, path string) map[string]int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	counts := map[string]int{}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".golden")
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			data, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			for i, line := range strings.Split(string(data), "\n") {
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				ks, vs, ok := strings.Cut(line, "\t")
				k, kerr := parseGolden(ks)
				v, verr := parseGolden(vs)
				if !ok || kerr != nil || verr != nil {
					return fmt.Errorf("%s:%d: not key<TAB>value (%v, %v)", f, i+1, kerr, verr)
				}
				if err := b.Put(k, v); err != nil {
					return err
				}
				counts[name]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// parseGolden reads a key or value as dumpBucket writes it.
func parseGolden(s string) ([]byte, error) {
	switch {
	case strings.HasPrefix(s, "hex:"):
		return hex.DecodeString(s[len("hex:"):])
	case strings.HasPrefix(s, `"`):
		u, err := strconv.Unquote(s)
		return []byte(u), err
	case strings.HasPrefix(s, "<") && strings.HasSuffix(s, " random bytes>"):
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(s, "<"), " random bytes>"))
		if err != nil {
			return nil, err
		}
		b := make([]byte, n)
		_, err = rand.Read(b)
		return b, err
	}
	return []byte(s), nil
}

// checkReadsBack reads every kind of record the store lists and compares
// how many come back with how many the golden files hold.
func checkReadsBack(t *testing.T, s *Store, counts map[string]int) {
	t.Helper()
	ctx := context.Background()
	from, to := goldenNow.AddDate(-10, 0, 0), goldenNow.AddDate(10, 0, 0)
	want := func(what string, got int, err error, bucket string) {
		t.Helper()
		if err != nil || got != counts[bucket] {
			t.Errorf("%s: read %d (%v), the golden files hold %d", what, got, err, counts[bucket])
		}
	}
	if _, err := s.Settings(ctx); err != nil {
		t.Errorf("settings: %v", err)
	}
	if gs, err := s.TariffGroups(ctx); err != nil || len(gs) == 0 {
		t.Errorf("tariff groups: %+v %v", gs, err)
	}
	members, err := s.Members(ctx, 0, 1000)
	want("members", len(members.Items), err, "members")
	feeds := 0
	for _, m := range members.Items {
		_, err := s.MemberCalendarFeed(ctx, m.ID)
		if err == nil {
			feeds++
		} else if fablab.ErrorCode(err) != fablab.ENOTFOUND {
			t.Errorf("calendar feed of member %s: %v", m.ID, err)
		}
	}
	want("calendar feeds", feeds, nil, "feeds_member")
	for _, m := range members.Items {
		_, err := s.Qualifications(ctx, m.ID)
		if err != nil {
			t.Errorf("qualifications of member %s: %v", m.ID, err)
		}
		if _, err := s.Badges(ctx, m.ID); err != nil {
			t.Errorf("badges of member %s: %v", m.ID, err)
		}
	}
	orgs, err := s.Organisations(ctx, 0, 1000)
	want("organisations", len(orgs.Items), err, "organisations")
	trs, err := s.Trainings(ctx, 0, 1000)
	want("trainings", len(trs.Items), err, "trainings")
	machines, err := s.Machines(ctx, 0, 1000)
	want("machines", len(machines.Items), err, "machines")
	nb := 0
	for _, m := range machines.Items {
		bs, err := s.Bookings(ctx, BookingFilter{MachineID: m.ID, From: from, To: to})
		if err != nil {
			t.Errorf("bookings of machine %s: %v", m.ID, err)
		}
		nb += len(bs)
	}
	want("bookings", nb, nil, "bookings")
	devices, err := s.Devices(ctx)
	want("devices", len(devices), err, "devices")
	sessions, err := s.SessionsStarted(ctx, from, to, 1000)
	want("sessions", len(sessions), err, "sessions")
	evs, err := s.AuditEvents(ctx, AuditFilter{From: from, To: to, Limit: 1000})
	want("audit events", len(evs), err, "audit")
}
