package fablab

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpeningHoursValidate(t *testing.T) {
	r := func(open, close ClockTime) TimeRange { return TimeRange{Open: open, Close: close} }
	tests := []struct {
		name    string
		hours   OpeningHours
		wantErr string // substring of the message; "" = valid
	}{
		{"all closed", OpeningHours{}, ""},
		{"one range", OpeningHours{Monday: []TimeRange{r(540, 1260)}}, ""},
		{"whole day", OpeningHours{Sunday: []TimeRange{r(0, 1440)}}, ""},
		{"two ranges with a lunch break", OpeningHours{Tuesday: []TimeRange{r(540, 720), r(840, 1080)}}, ""},
		{"touching ranges", OpeningHours{Wednesday: []TimeRange{r(540, 720), r(720, 1080)}}, ""},
		{"reversed", OpeningHours{Thursday: []TimeRange{r(1260, 540)}}, "thursday: 21:00–09:00 must close after it opens"},
		{"empty range", OpeningHours{Friday: []TimeRange{r(600, 600)}}, "friday: 10:00–10:00 must close after it opens"},
		{"overlapping", OpeningHours{Saturday: []TimeRange{r(540, 780), r(720, 1080)}}, "saturday: ranges must be in order and must not overlap"},
		{"unordered", OpeningHours{Sunday: []TimeRange{r(840, 1080), r(540, 720)}}, "sunday: ranges must be in order"},
		{"second range reversed", OpeningHours{Monday: []TimeRange{r(540, 720), r(900, 840)}}, "monday: 15:00–14:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.hours.Validate()
			checkErr(t, err, tt.wantErr)
		})
	}
}

func TestOpeningHoursDay(t *testing.T) {
	o := OpeningHours{
		Sunday: []TimeRange{{0, 1}}, Monday: []TimeRange{{1, 2}}, Tuesday: []TimeRange{{2, 3}},
		Wednesday: []TimeRange{{3, 4}}, Thursday: []TimeRange{{4, 5}}, Friday: []TimeRange{{5, 6}},
		Saturday: []TimeRange{{6, 7}},
	}
	for w := time.Sunday; w <= time.Saturday; w++ {
		if got := o.Day(w); len(got) != 1 || got[0].Open != ClockTime(w) {
			t.Errorf("Day(%v) = %v, want the %v ranges", w, got, w)
		}
	}
}

func TestBookingRulesValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*BookingRules)
		wantErr string
	}{
		{"defaults", func(r *BookingRules) {}, ""},
		{"slot 5", func(r *BookingRules) { r.SlotMinutes, r.MinMinutes, r.MaxMinutes = 5, 5, 60 }, ""},
		{"slot a whole day", func(r *BookingRules) { r.SlotMinutes, r.MinMinutes, r.MaxMinutes = 1440, 1440, 1440 }, ""},
		{"max at absolute cap", func(r *BookingRules) { r.MaxMinutes = MaxBookingMinutes }, ""},
		{"min equals max", func(r *BookingRules) { r.MinMinutes, r.MaxMinutes = 60, 60 }, ""},
		{"quota set", func(r *BookingRules) { r.WeeklyQuotaMinutes = 600 }, ""},
		{"all optional minutes zero", func(r *BookingRules) {
			r.CancelCutoffMinutes, r.CheckInMinutes, r.NoShowReleaseMinutes, r.MaxWalkInMinutes = 0, 0, 0, 0
		}, ""},
		{"max ahead 1", func(r *BookingRules) { r.MaxAheadDays = 1 }, ""},
		{"max ahead 366", func(r *BookingRules) { r.MaxAheadDays = 366 }, ""},
		{"quota a whole week", func(r *BookingRules) { r.WeeklyQuotaMinutes = 7 * 24 * 60 }, ""},
		{"quota over a week", func(r *BookingRules) { r.WeeklyQuotaMinutes = 7*24*60 + 1 }, "rules.weekly_quota_minutes"},
		{"cutoff a week", func(r *BookingRules) { r.CancelCutoffMinutes = 7 * 24 * 60 }, ""},
		{"cutoff that would overflow a duration", func(r *BookingRules) { r.CancelCutoffMinutes = 200_000_000 }, "at most"},
		{"check-in over a week", func(r *BookingRules) { r.CheckInMinutes = 7*24*60 + 1 }, "at most"},
		{"slot zero", func(r *BookingRules) { r.SlotMinutes = 0 }, "rules.slot_minutes"},
		{"slot negative", func(r *BookingRules) { r.SlotMinutes = -30 }, "rules.slot_minutes"},
		{"slot below 5", func(r *BookingRules) { r.SlotMinutes = 4 }, "rules.slot_minutes"},
		{"slot does not divide a day", func(r *BookingRules) { r.SlotMinutes = 7 }, "rules.slot_minutes"},
		{"slot longer than a day", func(r *BookingRules) { r.SlotMinutes = 2880 }, "rules.slot_minutes"},
		{"min below slot", func(r *BookingRules) { r.MinMinutes = 15 }, "rules.min_minutes"},
		{"min zero", func(r *BookingRules) { r.MinMinutes = 0 }, "rules.min_minutes"},
		{"min not a multiple of slot", func(r *BookingRules) { r.MinMinutes = 45 }, "rules.min_minutes"},
		{"max below min", func(r *BookingRules) { r.MinMinutes, r.MaxMinutes = 120, 60 }, "rules.max_minutes"},
		{"max above cap", func(r *BookingRules) { r.MaxMinutes = MaxBookingMinutes + 30 }, "rules.max_minutes"},
		{"max not a multiple of slot", func(r *BookingRules) { r.MaxMinutes = 250 }, "rules.max_minutes"},
		{"max ahead zero", func(r *BookingRules) { r.MaxAheadDays = 0 }, "rules.max_ahead_days"},
		{"max ahead 367", func(r *BookingRules) { r.MaxAheadDays = 367 }, "rules.max_ahead_days"},
		{"quota negative", func(r *BookingRules) { r.WeeklyQuotaMinutes = -1 }, "rules.weekly_quota_minutes"},
		{"cutoff negative", func(r *BookingRules) { r.CancelCutoffMinutes = -1 }, "cutoff"},
		{"check-in negative", func(r *BookingRules) { r.CheckInMinutes = -1 }, "check-in"},
		{"no-show negative", func(r *BookingRules) { r.NoShowReleaseMinutes = -1 }, "no-show"},
		{"walk-in negative", func(r *BookingRules) { r.MaxWalkInMinutes = -1 }, "walk-in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := DefaultBookingRules()
			tt.edit(&r)
			checkErr(t, r.Validate(), tt.wantErr)
		})
	}
}

func TestSettingsValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Settings)
		wantErr string
	}{
		{"defaults", func(s *Settings) {}, ""},
		{"UTC", func(s *Settings) { s.TimeZone = "UTC" }, ""},
		{"another zone", func(s *Settings) { s.TimeZone = "America/Montreal" }, ""},
		{"english", func(s *Settings) { s.Language = "en" }, ""},
		{"VAT 20 %", func(s *Settings) { s.VATRateBasisPoints = 2000 }, ""},
		{"VAT 100 %", func(s *Settings) { s.VATRateBasisPoints = 10000 }, ""},
		{"prefix of 10", func(s *Settings) { s.InvoicePrefix = "FAB-LAB-01" }, ""},
		{"lower-case prefix", func(s *Settings) { s.InvoicePrefix = "fg" }, ""},
		{"increment 60", func(s *Settings) { s.BillingIncrementMin = 60 }, ""},
		{"one-day closure", func(s *Settings) { s.Closures = []Closure{{From: Date{2026, 8, 1}, To: Date{2026, 8, 1}}} }, ""},
		{"nil closures", func(s *Settings) { s.Closures = nil }, ""},
		{"empty name", func(s *Settings) { s.Name = "  " }, "name"},
		{"name too long", func(s *Settings) { s.Name = strings.Repeat("n", 201) }, "name"},
		{"empty time zone", func(s *Settings) { s.TimeZone = "" }, "time_zone"},
		{"Local time zone", func(s *Settings) { s.TimeZone = "Local" }, "time_zone"},
		{"unknown time zone", func(s *Settings) { s.TimeZone = "Europe/Atlantis" }, "time_zone"},
		{"offset not a zone", func(s *Settings) { s.TimeZone = "+01:00" }, "time_zone"},
		{"path traversal", func(s *Settings) { s.TimeZone = "../../etc/passwd" }, "time_zone"},
		{"lower-case zone", func(s *Settings) { s.TimeZone = "europe/paris" }, "time_zone"},
		{"lower-case currency", func(s *Settings) { s.Currency = "eur" }, "currency"},
		{"currency too long", func(s *Settings) { s.Currency = "EURO" }, "currency"},
		{"currency too short", func(s *Settings) { s.Currency = "EU" }, "currency"},
		{"empty currency", func(s *Settings) { s.Currency = "" }, "currency"},
		{"currency symbols", func(s *Settings) { s.Currency = "!!!" }, "currency"},
		{"currency with digits", func(s *Settings) { s.Currency = "E1R" }, "currency"},
		{"currency with space", func(s *Settings) { s.Currency = "EU " }, "currency"},
		{"currency sign", func(s *Settings) { s.Currency = "€" }, "currency"},
		{"VAT negative", func(s *Settings) { s.VATRateBasisPoints = -1 }, "vat_rate_bp"},
		{"VAT above 100 %", func(s *Settings) { s.VATRateBasisPoints = 10001 }, "vat_rate_bp"},
		{"bad opening hours", func(s *Settings) { s.OpeningHours.Monday = []TimeRange{{Open: 600, Close: 540}} }, "opening hours of monday"},
		{"closure reversed", func(s *Settings) {
			s.Closures = []Closure{{From: Date{2026, 8, 15}, To: Date{2026, 8, 1}}}
		}, "closure 2026-08-15–2026-08-01 ends before it starts"},
		{"empty invoice prefix", func(s *Settings) { s.InvoicePrefix = "" }, "invoice_prefix"},
		{"invoice prefix too long", func(s *Settings) { s.InvoicePrefix = "ABCDEFGHIJK" }, "invoice_prefix"},
		{"invoice prefix with space", func(s *Settings) { s.InvoicePrefix = "F G" }, "invoice_prefix"},
		{"invoice prefix with slash", func(s *Settings) { s.InvoicePrefix = "FG/" }, "invoice_prefix"},
		{"invoice prefix accented", func(s *Settings) { s.InvoicePrefix = "É" }, "invoice_prefix"},
		{"invoice prefix Kelvin sign", func(s *Settings) { s.InvoicePrefix = "\u212A" }, "invoice_prefix"},
		{"billing increment zero", func(s *Settings) { s.BillingIncrementMin = 0 }, "billing_increment_minutes"},
		{"billing increment 61", func(s *Settings) { s.BillingIncrementMin = 61 }, "billing_increment_minutes"},
		{"language empty", func(s *Settings) { s.Language = "" }, "language"},
		{"language de", func(s *Settings) { s.Language = "de" }, "language"},
		{"language upper case", func(s *Settings) { s.Language = "FR" }, "language"},
		{"bad default rules", func(s *Settings) { s.DefaultRules.SlotMinutes = 7 }, "rules.slot_minutes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := DefaultSettings()
			tt.edit(&s)
			checkErr(t, s.Validate(), tt.wantErr)
		})
	}
}

func TestSettingsValidateFillsDefaultsAndLocation(t *testing.T) {
	s := DefaultSettings()
	s.Closures = nil
	s.TimeZone = "Asia/Tokyo"
	s.loc = nil
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Closures == nil {
		t.Errorf("Closures still nil after Validate")
	}
	if got := s.Location().String(); got != "Asia/Tokyo" {
		t.Errorf("Location() = %s, want Asia/Tokyo", got)
	}
}

func TestSettingsLocationWithoutValidate(t *testing.T) {
	tests := []struct {
		name string
		zone string
		want string
	}{
		{"valid zone loads lazily", "Europe/Berlin", "Europe/Berlin"},
		{"invalid zone falls back to UTC", "Nowhere/Nothing", "UTC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Settings{TimeZone: tt.zone}
			if got := s.Location().String(); got != tt.want {
				t.Errorf("Location() = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSettingsJSONKeepsLocationPrivate(t *testing.T) {
	s := DefaultSettings()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Settings
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil {
		t.Fatalf("decoded defaults do not validate: %v", err)
	}
	if back.Location() != s.Location() {
		t.Errorf("decoded settings have location %v, want %v", back.Location(), s.Location())
	}
	if !strings.Contains(string(b), `"monday":[{"open":"09:00","close":"21:00"}]`) {
		t.Errorf("opening hours not written as HH:MM: %s", b)
	}
}

func TestClosedOn(t *testing.T) {
	s := DefaultSettings()
	s.Closures = []Closure{
		{From: Date{2026, 7, 27}, To: Date{2026, 8, 16}, Reason: "summer"},
		{From: Date{2026, 12, 25}, To: Date{2026, 12, 25}, Reason: "Christmas"},
		{From: Date{2026, 12, 31}, To: Date{2027, 1, 1}},
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		d    Date
		want bool
	}{
		{"day before summer", Date{2026, 7, 26}, false},
		{"first day of summer (inclusive)", Date{2026, 7, 27}, true},
		{"middle of summer across months", Date{2026, 8, 1}, true},
		{"last day of summer (inclusive)", Date{2026, 8, 16}, true},
		{"day after summer", Date{2026, 8, 17}, false},
		{"single-day closure", Date{2026, 12, 25}, true},
		{"around single-day closure", Date{2026, 12, 24}, false},
		{"new year's eve", Date{2026, 12, 31}, true},
		{"new year's day", Date{2027, 1, 1}, true},
		{"after new year", Date{2027, 1, 2}, false},
		{"same day a year later", Date{2027, 7, 27}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.ClosedOn(tt.d); got != tt.want {
				t.Errorf("ClosedOn(%v) = %v, want %v", tt.d, got, tt.want)
			}
		})
	}
	if (&Settings{}).ClosedOn(Date{2026, 1, 1}) {
		t.Errorf("ClosedOn without closures = true")
	}
}

// DESIGN §2: a new lab starts in Europe/Paris, EUR, open Monday–Friday
// 09:00–21:00 and Saturday 10:00–18:00.
func TestDefaultSettings(t *testing.T) {
	s := DefaultSettings()
	if err := s.Validate(); err != nil {
		t.Fatalf("DefaultSettings().Validate() = %v", err)
	}
	if s.TimeZone != "Europe/Paris" || s.Location().String() != "Europe/Paris" {
		t.Errorf("time zone = %q / %v, want Europe/Paris", s.TimeZone, s.Location())
	}
	if s.Currency != "EUR" {
		t.Errorf("currency = %q, want EUR", s.Currency)
	}
	week := []TimeRange{{Open: 9 * 60, Close: 21 * 60}}
	want := map[time.Weekday][]TimeRange{
		time.Monday: week, time.Tuesday: week, time.Wednesday: week, time.Thursday: week, time.Friday: week,
		time.Saturday: {{Open: 10 * 60, Close: 18 * 60}},
		time.Sunday:   {},
	}
	for w, rs := range want {
		if got := s.OpeningHours.Day(w); !slices.Equal(got, rs) {
			t.Errorf("%v: %v, want %v", w, got, rs)
		}
	}
	if s.OpeningHours.Sunday == nil || s.Closures == nil {
		t.Errorf("Sunday and Closures must be empty, not nil (JSON [] rather than null)")
	}
	if s.DefaultRules != DefaultBookingRules() {
		t.Errorf("default rules = %+v, want DefaultBookingRules()", s.DefaultRules)
	}
	if s.Language != "fr" || s.InvoicePrefix != "FG" || s.BillingIncrementMin != 1 {
		t.Errorf("language %q, prefix %q, increment %d", s.Language, s.InvoicePrefix, s.BillingIncrementMin)
	}
	if s.VATRateBasisPoints == 0 && s.VATMention == "" {
		t.Errorf("VAT exemption needs a legal mention")
	}
}

func TestDefaultBookingRulesValid(t *testing.T) {
	r := DefaultBookingRules()
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultTariffGroups(t *testing.T) {
	gs := DefaultTariffGroups()
	var ids []string
	for _, g := range gs {
		ids = append(ids, g.ID)
	}
	want := []string{"student", "academic", "sme", "association", "non-member", "staff"}
	if !slices.Equal(ids, want) {
		t.Errorf("ids = %v, want %v", ids, want)
	}
	if err := ValidateTariffGroups(gs); err != nil {
		t.Errorf("ValidateTariffGroups(defaults) = %v", err)
	}
	gs[0].ID = "changed"
	if DefaultTariffGroups()[0].ID != "student" {
		t.Errorf("DefaultTariffGroups shares its slice between calls")
	}
}

func TestValidateTariffGroups(t *testing.T) {
	g := func(id, name string) TariffGroup { return TariffGroup{ID: id, Name: name} }
	tests := []struct {
		name    string
		groups  []TariffGroup
		wantErr string
	}{
		{"one group", []TariffGroup{g("all", "Tout le monde")}, ""},
		{"slug with digits and dash", []TariffGroup{g("tier-2", "Tier 2")}, ""},
		{"id of 32", []TariffGroup{g(strings.Repeat("a", 32), "Long")}, ""},
		{"name of 100", []TariffGroup{g("a", strings.Repeat("n", 100))}, ""},
		{"nil", nil, "at least one tariff group"},
		{"empty", []TariffGroup{}, "at least one tariff group"},
		{"empty id", []TariffGroup{g("", "No id")}, "tariff group id"},
		{"upper-case id", []TariffGroup{g("Student", "Étudiant")}, "tariff group id"},
		{"id with space", []TariffGroup{g("non member", "Non-membre")}, "tariff group id"},
		{"id with underscore", []TariffGroup{g("non_member", "Non-membre")}, "tariff group id"},
		{"id of 33", []TariffGroup{g(strings.Repeat("a", 33), "Long")}, "tariff group id"},
		{"unicode id", []TariffGroup{g("étudiant", "Étudiant")}, "tariff group id"},
		{"duplicate", []TariffGroup{g("sme", "PME"), g("student", "Étudiant"), g("sme", "PME bis")}, `"sme" is listed twice`},
		{"empty name", []TariffGroup{g("sme", "")}, `"sme" needs a name`},
		{"blank name", []TariffGroup{g("sme", " \t")}, `"sme" needs a name`},
		{"name of 101", []TariffGroup{g("sme", strings.Repeat("n", 101))}, `"sme" needs a name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, ValidateTariffGroups(tt.groups), tt.wantErr)
		})
	}
}

func TestLoadLocation(t *testing.T) {
	tests := []struct {
		name    string
		zone    string
		wantErr bool
	}{
		{"Paris", "Europe/Paris", false},
		{"New York", "America/New_York", false},
		{"UTC", "UTC", false},
		{"unknown", "Europe/Atlantis", true},
		{"garbage", "not a zone", true},
		{"traversal", "../../../etc/passwd", true},
		{"absolute path", "/etc/localtime", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := LoadLocation(tt.zone)
			if tt.wantErr {
				if err == nil || a != nil {
					t.Fatalf("LoadLocation(%q) = %v, %v, want error", tt.zone, a, err)
				}
				if _, err := LoadLocation(tt.zone); err == nil {
					t.Fatalf("second LoadLocation(%q) succeeded: errors must not be cached as successes", tt.zone)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := LoadLocation(tt.zone)
			if err != nil {
				t.Fatal(err)
			}
			if a != b {
				t.Errorf("LoadLocation(%q) returned %p then %p, want the cached pointer", tt.zone, a, b)
			}
			if a.String() != tt.zone {
				t.Errorf("name = %q, want %q", a.String(), tt.zone)
			}
		})
	}
}

func TestLoadLocationConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for _, z := range []string{"Europe/Paris", "Asia/Tokyo", "Bogus/Zone"} {
				loc, err := LoadLocation(z)
				if (err == nil) != (z != "Bogus/Zone") || (err == nil && loc.String() != z) {
					t.Errorf("LoadLocation(%q) = %v, %v", z, loc, err)
				}
			}
		})
	}
	wg.Wait()
}

// checkErr fails unless err is nil when want is "", or an EINVALID error whose
// message contains want.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	if code := ErrorCode(err); code != EINVALID {
		t.Errorf("code = %q, want %q (%v)", code, EINVALID, err)
	}
	if msg := ErrorMessage(err); !strings.Contains(msg, want) {
		t.Errorf("message %q does not contain %q", msg, want)
	}
}
