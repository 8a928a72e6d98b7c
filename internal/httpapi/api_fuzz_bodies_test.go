package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/mqtt"
)

// The fuzzers of the JSON bodies that change the lab: whatever the body,
// the answer is never a 5xx, a refusal (4xx) writes nothing at all (the
// whole file is compared), and what is accepted is stored as answered and
// holds to the domain's rules.

// apiFuzzWrite sends body as as and checks what holds for any body: a
// status among ok or a refusal that left the store as it was.
func apiFuzzWrite(t *testing.T, h *apiHarness, method, path string, as *apiAccount, body []byte, ok ...int) (int, []byte) {
	t.Helper()
	before := h.state(t)
	status, resp := apiFuzzSend(t, h, method, path, as, body)
	switch {
	case slices.Contains(ok, status):
	case status >= 400 && status < 500:
		h.unchanged(t, before)
	default:
		t.Errorf("%s %s: status %d: %s", method, path, status, apiShort(resp))
	}
	return status, resp
}

// apiFuzzStored checks that GET path answers what a write answered: the
// stored value is the one the client was shown.
func apiFuzzStored(t *testing.T, h *apiHarness, path string, as *apiAccount, answered []byte) {
	t.Helper()
	status, stored := apiFuzzSend(t, h, "GET", path, as, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s after the write: %d %s", path, status, apiShort(stored))
	}
	var a, b any
	if err := json.Unmarshal(answered, &a); err != nil {
		t.Fatalf("the answer %q: %v", apiShort(answered), err)
	}
	if err := json.Unmarshal(stored, &b); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("answered %s\nstored   %s", apiShort(answered), apiShort(stored))
	}
}

// apiFuzzPathID turns a fuzzed id into a path segment; ok is false for the
// segments a router rewrites (empty, dot segments).
func apiFuzzPathID(id string) (string, bool) {
	if id == "" || id == "." || id == ".." {
		return "", false
	}
	return url.PathEscape(id), true
}

// apiFuzzAddWithIDs seeds body with the first (real) id and with one of
// the others, in turn: every id is tried, and the corpus stays small
// enough to be replayed quickly.
func apiFuzzAddWithIDs(f *testing.F, i int, body string, ids []string) {
	f.Add([]byte(body), ids[0])
	f.Add([]byte(body), ids[1+i%(len(ids)-1)])
}

// apiFuzzJSONBodies are bodies any JSON endpoint must refuse cleanly.
var apiFuzzJSONBodies = []string{
	`{}`, `null`, `[]`, `""`, `0`, ``, ` `, `{`, `}`, `{"":""}`, `{"a":1,"a":2}`, "\xff\xfe",
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
}

// FuzzMachineRequest posts machines and patches the printer, as staff or
// as admin (prices and charges are the admin's).
func FuzzMachineRequest(f *testing.F) {
	h := newAPIHarness(f)
	training := h.training.ID.String()
	for _, s := range append([]string{
		`{"name":"Saw","kind":"saw"}`,
		`{"name":"Laser 2","kind":"laser-cutter","description":"CO2, 60 W","required_trainings":["` + training + `"],"state":"available"}`,
		`{"name":"Mill","kind":"cnc","rules":{"slot_minutes":15,"min_minutes":30,"max_minutes":240,"max_ahead_days":14,"weekly_quota_minutes":300,"walk_in":true,"max_walk_in_minutes":60}}`,
		`{"name":"Printer 2","kind":"3d-printer","prices":{"student":300,"sme":1200},"minimum_charge_cents":100,"no_show_fee_cents":500,"grace_minutes":10,"idle_power_w":4.5}`,
		`{"name":"Lathe","kind":"lathe","maintenance":[{"start":"2026-03-10T09:00:00+01:00","end":"2026-03-10T12:00:00+01:00","reason":"belt"}]}`,
		`{"name":"Lathe","kind":"lathe","maintenance":[{"start":"2026-03-10T12:00:00+01:00","end":"2026-03-10T09:00:00+01:00"}]}`,
		`{"name":"Saw","kind":"saw","device_id":"saw-1"}`, `{"name":"Saw","kind":"saw","state":"exploded"}`,
		`{"name":"Saw","kind":"saw","rules":{"slot_minutes":7}}`, `{"name":"Saw","kind":"saw","rules":{"slot_minutes":"30"}}`,
		`{"name":"Saw","kind":"saw","rules":{"SLOT_MINUTES":30}}`, `{"name":"Saw","kind":"saw","rules":null}`,
		`{"name":"Saw","kind":"saw","prices":{"vip":100}}`, `{"name":"Saw","kind":"saw","prices":{"student":-1}}`,
		`{"name":"Saw","kind":"saw","prices":{"student":1.5}}`, `{"name":"Saw","kind":"saw","idle_power_w":1e308}`,
		`{"name":"Saw","kind":"saw","grace_minutes":-5}`, `{"name":"Saw","kind":"saw","required_trainings":["999"]}`,
		`{"name":"Saw","kind":"saw","required_trainings":["` + training + `","` + training + `"]}`,
		`{"name":"  ","kind":"saw"}`, `{"name":"` + strings.Repeat("n", 201) + `","kind":"saw"}`, `{"name":"Saw","kind":"Table Saw"}`,
		`{"name":"\u0000\u001b[31m","kind":"saw"}`, `{"name":"=cmd|' /C calc'!A0","kind":"saw"}`, `{"name":"Saw"}`, `{"kind":"saw"}`,
		`{"name":"Saw","kind":"saw","id":"1"}`, `{"name":"Saw","kind":"saw","created_at":"2026-01-01T00:00:00Z"}`,
	}, apiFuzzJSONBodies...) {
		for _, flags := range []uint8{0, 1, 2, 3} {
			f.Add([]byte(s), flags)
		}
	}
	groups := fablab.DefaultTariffGroups()
	f.Fuzz(func(t *testing.T, body []byte, flags uint8) {
		patch, as := flags&1 != 0, h.staff
		if flags&2 != 0 {
			as = h.admin
		}
		method, path, ok := "POST", "/api/v1/machines", http.StatusCreated
		if patch {
			method, path, ok = "PATCH", "/api/v1/machines/"+h.printer.ID.String(), http.StatusOK
		}
		status, resp := apiFuzzWrite(t, h, method, path, as, body, ok)
		if status != ok {
			return
		}
		var m fablab.Machine
		if err := json.Unmarshal(resp, &m); err != nil {
			t.Fatalf("%d with %q: %v", status, apiShort(resp), err)
		}
		if patch && m.ID != h.printer.ID || !patch && m.ID == 0 {
			t.Errorf("%s %s answered machine %s", method, path, m.ID)
		}
		if err := m.Validate(groups); err != nil {
			t.Errorf("accepted a machine that does not validate: %v (%s)", err, apiShort(resp))
		}
		apiFuzzStored(t, h, "/api/v1/machines/"+m.ID.String(), as, resp)
	})
}

// FuzzSettingsRequest patches the lab's settings (name, zone, VAT,
// opening hours, closures, default rules…) or replaces its tariff groups,
// as admin.
func FuzzSettingsRequest(f *testing.F) {
	h := newAPIHarness(f)
	for _, s := range append([]string{
		`{"name":"FabLab Parc Tech","time_zone":"Europe/Paris","currency":"EUR","vat_rate_bp":2000,"language":"fr"}`,
		`{"opening_hours":{"monday":[{"open":"09:00","close":"12:00"},{"open":"14:00","close":"18:00"}],"sunday":[]}}`,
		`{"opening_hours":{"monday":[{"open":"18:00","close":"09:00"}]}}`, `{"opening_hours":{"monday":[{"open":"9h","close":"18:00"}]}}`,
		`{"opening_hours":{"monday":[{"open":"09:00","close":"24:00"}]}}`, `{"opening_hours":{"Monday":[]}}`, `{"opening_hours":{"funday":[]}}`,
		`{"opening_hours":{"monday":[{"open":"09:00","close":"12:00"},{"open":"11:00","close":"13:00"}]}}`,
		`{"closures":[{"from":"2026-08-01","to":"2026-08-15","reason":"summer"}]}`, `{"closures":[{"from":"2026-08-15","to":"2026-08-01"}]}`,
		`{"closures":[{"from":"2026-02-30","to":"2026-03-01"}]}`, `{"closures":null}`,
		`{"default_rules":{"slot_minutes":30,"max_ahead_days":60}}`, `{"default_rules":{"slot_minutes":0}}`,
		`{"invoice_prefix":"FG","billing_increment_minutes":15,"payment_terms_days":30,"free_under_minutes":5}`,
		`{"invoice_prefix":"-FG"}`, `{"invoice_prefix":"\u212a"}`, `{"legal_name":"Atelier","address":"1 rue\nParis","siret":"12345678900011","vat_number":"FR123","late_penalty":"x"}`,
		`{"time_zone":"Mars/Olympus"}`, `{"time_zone":"Local"}`, `{"time_zone":""}`, `{"time_zone":"../../etc/passwd"}`,
		`{"currency":"eur"}`, `{"vat_rate_bp":10001}`, `{"language":"de"}`, `{"name":""}`, `{"vat_mention":"TVA non applicable"}`,
		`{"groups":[{"id":"student","name":"Students"},{"id":"academic","name":"Academics"},{"id":"sme","name":"SMEs","description":"small firms"},` +
			`{"id":"association","name":"Associations"},{"id":"non-member","name":"Public"},{"id":"staff","name":"Staff"},{"id":"-new","name":"=New"}]}`,
		`{"groups":[{"id":"student","name":"Étudiant"}]}`, `{"groups":[{"id":"Student","name":"x"}]}`, `{"groups":[{"id":"a","name":"x"},{"id":"a","name":"y"}]}`,
		`{"groups":[]}`, `{"groups":null}`,
	}, apiFuzzJSONBodies...) {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, tariffs bool) {
		method, path := "PATCH", "/api/v1/settings"
		if tariffs {
			method, path = "PUT", "/api/v1/tariffs"
		}
		status, resp := apiFuzzWrite(t, h, method, path, h.admin, body, http.StatusOK)
		if status != http.StatusOK {
			return
		}
		apiFuzzStored(t, h, path, h.admin, resp)
		if tariffs {
			var doc tariffsDoc
			if err := json.Unmarshal(resp, &doc); err != nil || fablab.ValidateTariffGroups(doc.Groups) != nil {
				t.Errorf("accepted tariff groups %s (%v)", apiShort(resp), err)
			}
			return
		}
		var st fablab.Settings
		if err := json.Unmarshal(resp, &st); err != nil {
			t.Fatal(err)
		}
		if err := st.Validate(); err != nil {
			t.Errorf("accepted settings that do not validate: %v (%s)", err, apiShort(resp))
		}
	})
}

// FuzzDeviceRequest registers devices, as admin.
func FuzzDeviceRequest(f *testing.F) {
	h := newAPIHarness(f)
	h.reconfigure(f, func(c *Config) { c.HashDeviceSecret = mqtt.MosquittoPasswordHash })
	printer := h.printer.ID.String()
	for _, s := range append([]string{
		`{"id":"laser-1","kind":"bridge"}`, `{"id":"printer-1","kind":"bridge","machine_id":"` + printer + `"}`,
		`{"id":"door-1","kind":"door"}`, `{"id":"Laser 1","kind":"bridge"}`, `{"id":"` + strings.Repeat("a", 33) + `","kind":"bridge"}`,
		`{"id":"x","kind":"toaster"}`, `{"id":"x","kind":"bridge","machine_id":"999"}`, `{"id":"x","kind":"bridge","machine_id":"0"}`,
		`{"id":"x","kind":"bridge","machine_id":` + printer + `}`, `{"id":"x"}`, `{"kind":"bridge"}`, `{"id":"x","kind":"bridge","secret":"s"}`,
		`{"id":"x","kind":"bridge","disabled":true}`, `{"id":"+","kind":"bridge"}`, `{"id":"#","kind":"bridge"}`,
	}, apiFuzzJSONBodies...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		status, resp := apiFuzzWrite(t, h, "POST", "/api/v1/devices", h.admin, body, http.StatusCreated)
		if status != http.StatusCreated {
			return
		}
		var d deviceCreated
		if err := json.Unmarshal(resp, &d); err != nil {
			t.Fatal(err)
		}
		stored, err := h.store.Device(context.Background(), d.ID)
		if err != nil {
			t.Fatalf("device %q answered but not stored: %v", d.ID, err)
		}
		if !fablab.ValidDeviceID(d.ID) || d.MQTTSecret == "" || stored.SecretHash == "" || strings.Contains(string(resp), stored.SecretHash) {
			t.Errorf("accepted device %s: %+v", apiShort(resp), stored)
		}
		if err := stored.Validate(); err != nil {
			t.Errorf("stored a device that does not validate: %v", err)
		}
	})
}

// FuzzTrainingRequest creates trainings, as staff.
func FuzzTrainingRequest(f *testing.F) {
	h := newAPIHarness(f)
	for _, s := range append([]string{
		`{"name":"Laser safety 2","description":"Two hours","validity_months":24}`, `{"name":"CNC"}`,
		`{"name":"  "}`, `{"name":"x","validity_months":-1}`, `{"name":"x","validity_months":100000}`, `{"name":"x","validity_months":1.5}`,
		`{"name":"` + strings.Repeat("n", 300) + `"}`, `{"name":"x","id":"1"}`, `{"NAME":"x"}`,
	}, apiFuzzJSONBodies...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		status, resp := apiFuzzWrite(t, h, "POST", "/api/v1/trainings", h.staff, body, http.StatusCreated)
		if status != http.StatusCreated {
			return
		}
		var tr fablab.Training
		if err := json.Unmarshal(resp, &tr); err != nil {
			t.Fatal(err)
		}
		if err := tr.Validate(); err != nil || tr.ID == 0 || tr.Name != strings.TrimSpace(tr.Name) {
			t.Errorf("accepted training %s (%v)", apiShort(resp), err)
		}
		var all []fablab.Training
		_, list := apiFuzzSend(t, h, "GET", "/api/v1/trainings", h.staff, nil)
		if err := json.Unmarshal(list, &all); err != nil || !slices.ContainsFunc(all, func(x fablab.Training) bool { return x.ID == tr.ID && x.Name == tr.Name }) {
			t.Errorf("training %s is not listed (%v)", tr.ID, err)
		}
	})
}

// apiBillingFuzz is a harness with a ledger: an issued invoice for alice
// (her charge invoiced) and an uninvoiced charge of bob's.
type apiBillingFuzz struct {
	*apiHarness
	invoice fablab.Invoice
	charges []fablab.Charge
}

func newAPIBillingFuzz(f *testing.F) apiBillingFuzz {
	h := newAPIHarness(f)
	b := apiBillingFuzz{apiHarness: h, invoice: h.seedInvoice(f, h.alice)}
	h.seedUninvoiced(f, h.bob)
	var err error
	b.charges, err = h.store.Charges(context.Background(), bolt.ChargeFilter{From: time.Unix(0, 0), To: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), Limit: 100})
	if err != nil || len(b.charges) != 2 {
		f.Fatalf("seeded charges: %v, %v", b.charges, err)
	}
	return b
}

// ledgerSize counts the charges and invoices (credit notes included).
func (b apiBillingFuzz) ledgerSize(t *testing.T) (charges, invoices int) {
	t.Helper()
	ctx := context.Background()
	cs, err := b.store.Charges(ctx, bolt.ChargeFilter{From: time.Unix(0, 0), To: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), Limit: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	invs, err := b.store.Invoices(ctx, bolt.InvoiceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(cs), len(invs)
}

// FuzzChargeCorrection posts corrections to charges, as staff.
func FuzzChargeCorrection(f *testing.F) {
	b := newAPIBillingFuzz(f)
	ids := []string{b.charges[0].ID.String(), b.charges[1].ID.String(), "999", "0", "-1", "x", "18446744073709551616"}
	for i, s := range append([]string{
		`{"amount_cents":-300,"note":"the laser stopped"}`, `{"amount_cents":250}`, `{"amount_cents":0,"note":"nothing"}`,
		`{"amount_cents":-9223372036854775808}`, `{"amount_cents":9223372036854775807}`, `{"amount_cents":9223372036854775808}`,
		`{"amount_cents":1.5}`, `{"amount_cents":"5"}`, `{"amount_cents":null}`, `{"note":"no amount"}`,
		`{"amount_cents":1,"note":"` + strings.Repeat("n", 2000) + `"}`, `{"amount_cents":1,"note":"=HYPERLINK(1)"}`,
		`{"amount_cents":1,"Note":"x"}`, `{"amount_cents":1,"corrects":"1"}`,
	}, apiFuzzJSONBodies...) {
		apiFuzzAddWithIDs(f, i, s, ids)
	}
	f.Fuzz(func(t *testing.T, body []byte, id string) {
		seg, ok := apiFuzzPathID(id)
		if !ok {
			return
		}
		charges, _ := b.ledgerSize(t)
		status, resp := apiFuzzWrite(t, b.apiHarness, "POST", "/api/v1/charges/"+seg+"/corrections", b.staff, body, http.StatusCreated)
		if status != http.StatusCreated {
			return
		}
		var req struct {
			AmountCents int64 `json:"amount_cents"`
		}
		_ = json.Unmarshal(body, &req)
		var ch fablab.Charge
		if err := json.Unmarshal(resp, &ch); err != nil {
			t.Fatal(err)
		}
		if ch.Kind != fablab.ChargeCorrection || ch.Corrects.String() != id || ch.AmountCents != req.AmountCents {
			t.Errorf("correction of %s by %d answered %+v", id, req.AmountCents, ch)
		}
		if after, _ := b.ledgerSize(t); after != charges+1 {
			t.Errorf("201 with %d charges before and %d after", charges, after)
		}
	})
}

// FuzzCreditNote posts credit notes against invoices, as staff.
func FuzzCreditNote(f *testing.F) {
	b := newAPIBillingFuzz(f)
	ids := []string{b.invoice.ID.String(), "999", "0", "x"}
	for i, s := range append([]string{
		`{"amount_cents":100,"reason":"a refund"}`, `{"amount_cents":100,"vat_rate_bp":0,"reason":"x"}`, `{"amount_cents":100,"vat_rate_bp":2000,"reason":"x"}`,
		`{"amount_cents":100,"vat_rate_bp":-1,"reason":"x"}`, `{"amount_cents":0,"reason":"x"}`, `{"amount_cents":-100,"reason":"x"}`,
		`{"amount_cents":1000000,"reason":"more than invoiced"}`, `{"amount_cents":100}`, `{"amount_cents":100,"reason":""}`,
		`{"amount_cents":9223372036854775807,"reason":"x"}`, `{"amount_cents":-9223372036854775808,"reason":"x"}`,
		`{"amount_cents":100,"vat_rate_bp":9223372036854775807,"reason":"x"}`, `{"reason":"no amount"}`, `{"amount_cents":"100","reason":"x"}`,
	}, apiFuzzJSONBodies...) {
		apiFuzzAddWithIDs(f, i, s, ids)
	}
	f.Fuzz(func(t *testing.T, body []byte, id string) {
		seg, ok := apiFuzzPathID(id)
		if !ok {
			return
		}
		_, invoices := b.ledgerSize(t)
		status, resp := apiFuzzWrite(t, b.apiHarness, "POST", "/api/v1/invoices/"+seg+"/credit-notes", b.staff, body, http.StatusCreated)
		if status != http.StatusCreated {
			return
		}
		var cn fablab.Invoice
		if err := json.Unmarshal(resp, &cn); err != nil {
			t.Fatal(err)
		}
		if cn.Kind != fablab.InvoiceKindCreditNote || cn.Corrects.String() != id || cn.Number == "" {
			t.Errorf("credit note on %s answered %s", id, apiShort(resp))
		}
		if _, after := b.ledgerSize(t); after != invoices+1 {
			t.Errorf("201 with %d invoices before and %d after", invoices, after)
		}
	})
}

// FuzzPayment records payments of invoices, as staff.
func FuzzPayment(f *testing.F) {
	b := newAPIBillingFuzz(f)
	ids := []string{b.invoice.ID.String(), "999", "0", "x"}
	for range 3 { // an invoice is paid once: a few more to pay
		ids = append(ids, b.seedInvoice(f, b.bob).ID.String())
	}
	for i, s := range append([]string{
		`{"paid_on":"2026-03-02","method":"transfer","reference":"VIR-123"}`, `{"paid_on":"2026-03-01","method":"cash"}`, `{"paid_on":"2026-03-03","method":"card"}`,
		`{"paid_on":"2026-02-30","method":"cash"}`, `{"paid_on":"05/03/2026","method":"cash"}`, `{"paid_on":"2026-03-05T10:00:00Z","method":"cash"}`,
		`{"paid_on":"0000-01-01","method":"cash"}`, `{"paid_on":"9999-12-31","method":"cash"}`, `{"paid_on":"2026-03-05","method":""}`,
		`{"paid_on":"2026-03-05","method":"bitcoin"}`, `{"paid_on":"2026-03-05","method":"cash","reference":"` + strings.Repeat("r", 500) + `"}`,
		`{"paid_on":"","method":"cash"}`, `{"method":"cash"}`, `{"paid_on":20260305,"method":"cash"}`,
	}, apiFuzzJSONBodies...) {
		apiFuzzAddWithIDs(f, i, s, ids)
	}
	f.Fuzz(func(t *testing.T, body []byte, id string) {
		seg, ok := apiFuzzPathID(id)
		if !ok {
			return
		}
		status, resp := apiFuzzWrite(t, b.apiHarness, "POST", "/api/v1/invoices/"+seg+"/payments", b.staff, body, http.StatusCreated)
		if status != http.StatusCreated {
			return
		}
		var req paymentRequest
		_ = json.Unmarshal(body, &req)
		on, err := fablab.ParseDate(req.PaidOn)
		if err != nil {
			t.Fatalf("a payment on %q was recorded", req.PaidOn)
		}
		if !bytes.Contains(resp, []byte(`"`+on.String()+`"`)) {
			t.Errorf("payment on %s answered %s", on, apiShort(resp))
		}
		// An invoice is paid once.
		if status, _ := apiFuzzWrite(t, b.apiHarness, "POST", "/api/v1/invoices/"+seg+"/payments", b.staff, body); status < 400 {
			t.Errorf("a second payment of invoice %s: %d", id, status)
		}
	})
}

// FuzzInvoiceRun runs the invoices of a period given as a query parameter,
// as staff: a refusal names the period and writes nothing; a run that
// issued invoices gives the same ones, and issues nothing, when repeated.
func FuzzInvoiceRun(f *testing.F) {
	b := newAPIBillingFuzz(f)
	for _, p := range []string{"2015-01", "2015-02", "2026-02", "2026-03", "2026-04", "0001-01", "9999-12", "0000-01", "2026-00", "2026-13",
		"2026-3", "2026-03-01", "March", "", " 2026-02", "2026-02 ", "+2026-02", "2026-02\x00", "２０２６-０２"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, period string) {
		path := "/api/v1/invoices/run?period=" + url.QueryEscape(period)
		before := b.state(t)
		status, resp := apiFuzzSend(t, b.apiHarness, "POST", path, b.staff, nil)
		if status >= 400 && status < 500 {
			b.unchanged(t, before)
			var p Problem
			_ = json.Unmarshal(resp, &p)
			if status == http.StatusBadRequest && p.Field != "period" {
				t.Errorf("period %q: refused with field %q: %s", period, p.Field, p.Detail)
			}
			return
		}
		if status != http.StatusOK && status != http.StatusCreated {
			t.Fatalf("period %q: status %d: %s", period, status, apiShort(resp))
		}
		type run struct {
			Period   string           `json:"period"`
			Created  bool             `json:"created"`
			Invoices []fablab.Invoice `json:"invoices"`
		}
		var first, again run
		if err := json.Unmarshal(resp, &first); err != nil {
			t.Fatal(err)
		}
		if first.Period != period || first.Created != (status == http.StatusCreated) {
			t.Errorf("period %q: %d answered %s", period, status, apiShort(resp))
		}
		status, resp = apiFuzzSend(t, b.apiHarness, "POST", path, b.staff, nil)
		if err := json.Unmarshal(resp, &again); err != nil || status != http.StatusOK || again.Created || len(again.Invoices) != len(first.Invoices) {
			t.Fatalf("period %q run again: %d %s", period, status, apiShort(resp))
		}
		for i := range first.Invoices {
			if again.Invoices[i].Number != first.Invoices[i].Number {
				t.Errorf("period %q run again gave invoice %s, first %s", period, again.Invoices[i].Number, first.Invoices[i].Number)
			}
		}
	})
}
