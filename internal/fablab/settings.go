package fablab

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // time zones work on hosts without a zoneinfo database
)

// TimeRange is one opening range within a day, [Open, Close) in wall-clock time.
type TimeRange struct {
	Open  ClockTime `json:"open"`
	Close ClockTime `json:"close"`
}

// OpeningHours lists the opening ranges for each weekday (lab time zone).
// A day with no ranges is closed.
type OpeningHours struct {
	Monday    []TimeRange `json:"monday"`
	Tuesday   []TimeRange `json:"tuesday"`
	Wednesday []TimeRange `json:"wednesday"`
	Thursday  []TimeRange `json:"thursday"`
	Friday    []TimeRange `json:"friday"`
	Saturday  []TimeRange `json:"saturday"`
	Sunday    []TimeRange `json:"sunday"`
}

// Day returns the ranges of weekday w.
func (o *OpeningHours) Day(w time.Weekday) []TimeRange {
	return *o.day(w)
}

// Set replaces the ranges of weekday w.
func (o *OpeningHours) Set(w time.Weekday, ranges []TimeRange) {
	if ranges == nil {
		ranges = []TimeRange{}
	}
	*o.day(w) = ranges
}

func (o *OpeningHours) day(w time.Weekday) *[]TimeRange {
	switch w {
	case time.Monday:
		return &o.Monday
	case time.Tuesday:
		return &o.Tuesday
	case time.Wednesday:
		return &o.Wednesday
	case time.Thursday:
		return &o.Thursday
	case time.Friday:
		return &o.Friday
	case time.Saturday:
		return &o.Saturday
	default:
		return &o.Sunday
	}
}

// Validate checks that each day's ranges are non-empty, in order and disjoint.
func (o *OpeningHours) Validate() error {
	for w := time.Sunday; w <= time.Saturday; w++ {
		day := strings.ToLower(w.String())
		field := "opening_hours." + day
		rs := o.Day(w)
		for i, r := range rs {
			if r.Open < 0 || r.Close > 24*60 {
				return Errorf(EINVALID, "opening hours of %s: times must be between 00:00 and 24:00", day).On(field).Say("problem_hours_range")
			}
			if r.Close <= r.Open {
				return Errorf(EINVALID, "opening hours of %s: %s–%s must close after it opens", day, r.Open, r.Close).On(field).
					Say("problem_hours_order", "Open", r.Open.String(), "Close", r.Close.String())
			}
			if i > 0 && r.Open < rs[i-1].Close {
				return Errorf(EINVALID, "opening hours of %s: ranges must be in order and must not overlap", day).On(field).Say("problem_hours_overlap")
			}
		}
	}
	return nil
}

// Closure is a span of whole days (inclusive) when the lab is closed.
type Closure struct {
	From   Date   `json:"from"`
	To     Date   `json:"to"`
	Reason string `json:"reason,omitempty"`
}

// BookingRules are a machine's booking rules; the lab settings hold the
// defaults given to new machines. Durations are in minutes.
type BookingRules struct {
	SlotMinutes          int  `json:"slot_minutes"`            // start, end and length are multiples of this
	MinMinutes           int  `json:"min_minutes"`             // shortest booking
	MaxMinutes           int  `json:"max_minutes"`             // longest booking
	MaxAheadDays         int  `json:"max_ahead_days"`          // how far ahead a maker may book
	WeeklyQuotaMinutes   int  `json:"weekly_quota_minutes"`    // per member per ISO week on this machine; 0 = none
	CancelCutoffMinutes  int  `json:"cancel_cutoff_minutes"`   // makers cannot cancel later than this before start
	CheckInMinutes       int  `json:"check_in_minutes"`        // check-in opens this early when the machine is free
	NoShowReleaseMinutes int  `json:"no_show_release_minutes"` // unclaimed booking released after this
	WalkIn               bool `json:"walk_in"`                 // unbooked use allowed when free
	MaxWalkInMinutes     int  `json:"max_walk_in_minutes"`     // cap of one walk-in session
	RequireTraining      bool `json:"require_training"`        // the required trainings are needed to book, not only to use
}

// MaxBookingMinutes is the absolute cap on one booking, whatever the rules say.
const MaxBookingMinutes = 7 * 24 * 60

// maxRuleMinutes bounds the rules' delays (cancellation cutoff, check-in…).
const maxRuleMinutes = 7 * 24 * 60

// DefaultBookingRules are the rules of a new lab.
func DefaultBookingRules() BookingRules {
	return BookingRules{
		SlotMinutes: 30, MinMinutes: 30, MaxMinutes: 240, MaxAheadDays: 28,
		WeeklyQuotaMinutes: 0, CancelCutoffMinutes: 120, CheckInMinutes: 15,
		NoShowReleaseMinutes: 15, WalkIn: true, MaxWalkInMinutes: 120, RequireTraining: true,
	}
}

// Validate checks the rules for consistency.
func (r *BookingRules) Validate() error {
	switch {
	case r.SlotMinutes < 5 || r.SlotMinutes > 24*60 || (24*60)%r.SlotMinutes != 0:
		return Errorf(EINVALID, "rules.slot_minutes must divide a day (5, 10, 15, 30, 60…), got %d", r.SlotMinutes).On("rules.slot_minutes").Say("problem_rules_slot", "Got", r.SlotMinutes)
	case r.MinMinutes < r.SlotMinutes || r.MinMinutes%r.SlotMinutes != 0:
		return Errorf(EINVALID, "rules.min_minutes must be a positive multiple of slot_minutes (%d), got %d", r.SlotMinutes, r.MinMinutes).On("rules.min_minutes").Say("problem_rules_min", "Slot", r.SlotMinutes, "Got", r.MinMinutes)
	case r.MaxMinutes < r.MinMinutes || r.MaxMinutes > MaxBookingMinutes || r.MaxMinutes%r.SlotMinutes != 0:
		return Errorf(EINVALID, "rules.max_minutes must be a multiple of slot_minutes between min_minutes (%d) and %d, got %d", r.MinMinutes, MaxBookingMinutes, r.MaxMinutes).On("rules.max_minutes").Say("problem_rules_max", "Min", r.MinMinutes, "Max", MaxBookingMinutes, "Got", r.MaxMinutes)
	case r.MaxAheadDays < 1 || r.MaxAheadDays > 366:
		return Errorf(EINVALID, "rules.max_ahead_days must be between 1 and 366, got %d", r.MaxAheadDays).On("rules.max_ahead_days").Say("problem_rules_ahead", "Got", r.MaxAheadDays)
	case r.WeeklyQuotaMinutes < 0:
		return Errorf(EINVALID, "rules.weekly_quota_minutes must be 0 (no quota) or positive, got %d", r.WeeklyQuotaMinutes).On("rules.weekly_quota_minutes").Say("problem_rules_quota")
	case r.WeeklyQuotaMinutes > 7*24*60:
		return Errorf(EINVALID, "rules.weekly_quota_minutes must be at most a week (%d), got %d", 7*24*60, r.WeeklyQuotaMinutes).On("rules.weekly_quota_minutes").Say("problem_rules_quota_max", "Max", 7*24*60)
	case r.CancelCutoffMinutes < 0 || r.CheckInMinutes < 0 || r.NoShowReleaseMinutes < 0 || r.MaxWalkInMinutes < 0:
		return Errorf(EINVALID, "rules: cutoff, check-in, no-show and walk-in minutes must not be negative")
	case r.CancelCutoffMinutes > maxRuleMinutes || r.CheckInMinutes > maxRuleMinutes || r.NoShowReleaseMinutes > maxRuleMinutes || r.MaxWalkInMinutes > maxRuleMinutes:
		return Errorf(EINVALID, "rules: cutoff, check-in, no-show and walk-in minutes must be at most %d (a week)", maxRuleMinutes)
	}
	return nil
}

// TariffGroup is a price category (student, sme…).
type TariffGroup struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// DefaultTariffGroups are the groups of a new lab.
func DefaultTariffGroups() []TariffGroup {
	return []TariffGroup{
		{ID: "student", Name: "Étudiant"},
		{ID: "academic", Name: "Académique"},
		{ID: "sme", Name: "PME"},
		{ID: "association", Name: "Association"},
		{ID: "non-member", Name: "Non-membre"},
		{ID: "staff", Name: "Équipe"},
	}
}

// ValidateTariffGroups checks ids ([a-z0-9-]{1,32}), names and uniqueness.
func ValidateTariffGroups(gs []TariffGroup) error {
	if len(gs) == 0 {
		return Errorf(EINVALID, "there must be at least one tariff group").On("groups").Say("problem_groups_none")
	}
	seen := map[string]bool{}
	for _, g := range gs {
		if !validSlug(g.ID) {
			return Errorf(EINVALID, "tariff group id %q must be 1–32 of a-z, 0-9 and -", truncate(g.ID, 40)).On("groups").Say("problem_group_id", "ID", truncate(g.ID, 40))
		}
		if seen[g.ID] {
			return Errorf(EINVALID, "tariff group %q is listed twice", g.ID).On("groups").Say("problem_group_twice", "ID", g.ID)
		}
		seen[g.ID] = true
		if strings.TrimSpace(g.Name) == "" || len(g.Name) > 100 {
			return Errorf(EINVALID, "tariff group %q needs a name of 1–100 characters", g.ID).On("groups").Say("problem_group_name", "ID", g.ID)
		}
	}
	return nil
}

func validSlug(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Settings are the lab-wide settings.
type Settings struct {
	Name                string       `json:"name"`
	TimeZone            string       `json:"time_zone"`
	Currency            string       `json:"currency"`
	VATRateBasisPoints  int          `json:"vat_rate_bp"` // 2000 = 20 %; 0 with a legal mention for exempt associations
	VATMention          string       `json:"vat_mention,omitempty"`
	OpeningHours        OpeningHours `json:"opening_hours"`
	Closures            []Closure    `json:"closures"`
	InvoicePrefix       string       `json:"invoice_prefix"`
	BillingIncrementMin int          `json:"billing_increment_minutes"`
	DefaultRules        BookingRules `json:"default_rules"`
	Language            string       `json:"language"`
	// The seller on invoices ("" legal_name: the lab's name) and the terms
	// they state.
	LegalName string `json:"legal_name,omitempty"`
	Address   string `json:"address,omitempty"`
	SIRET     string `json:"siret,omitempty"`
	VATNumber string `json:"vat_number,omitempty"`
	// PaymentTermsDays: an invoice is due this many days after its issue
	// (0: on receipt; French law allows at most 60).
	PaymentTermsDays int `json:"payment_terms_days"`
	// LatePenalty is the late-payment penalty invoices state ("": the
	// legal minimum, three times the legal interest rate).
	LatePenalty string `json:"late_penalty,omitempty"`
	// FreeUnderMinutes: sessions shorter than this cost nothing (0: none).
	FreeUnderMinutes int `json:"free_under_minutes"`
	loc              *time.Location
}

// DefaultLatePenalty is the late-payment penalty invoices state when the
// lab has not set its own (Code de commerce, L441-10).
const DefaultLatePenalty = "En cas de retard de paiement, pénalités au taux de trois fois le taux d'intérêt légal"

// SellerName is the seller's name on invoices.
func (s *Settings) SellerName() string {
	if s.LegalName != "" {
		return s.LegalName
	}
	return s.Name
}

// DefaultSettings are the settings of a new lab: Europe/Paris, EUR, open
// Monday–Friday 09:00–21:00 and Saturday 10:00–18:00.
func DefaultSettings() Settings {
	week := func() []TimeRange { return []TimeRange{{Open: 9 * 60, Close: 21 * 60}} }
	s := Settings{
		Name:     "FabLab",
		TimeZone: "Europe/Paris",
		Currency: "EUR",
		OpeningHours: OpeningHours{
			Monday: week(), Tuesday: week(), Wednesday: week(), Thursday: week(), Friday: week(),
			Saturday: []TimeRange{{Open: 10 * 60, Close: 18 * 60}},
			Sunday:   []TimeRange{},
		},
		Closures:            []Closure{},
		VATRateBasisPoints:  0,
		VATMention:          "TVA non applicable, art. 293 B du CGI",
		InvoicePrefix:       "FG",
		BillingIncrementMin: 1,
		DefaultRules:        DefaultBookingRules(),
		Language:            "fr",
		PaymentTermsDays:    30,
	}
	_ = s.Validate() // sets loc; the defaults are valid
	return s
}

// Location returns the lab's time zone (valid after Validate).
func (s *Settings) Location() *time.Location {
	if s.loc == nil {
		loc, err := LoadLocation(s.TimeZone)
		if err != nil {
			return time.UTC
		}
		s.loc = loc
	}
	return s.loc
}

var locations sync.Map // name → *time.Location

// LoadLocation is time.LoadLocation with a cache: the standard one reads and
// parses the zone database on every call.
func LoadLocation(name string) (*time.Location, error) {
	if loc, ok := locations.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, loc)
	return loc, nil
}

// Validate checks the settings and loads the time zone.
func (s *Settings) Validate() error {
	if strings.TrimSpace(s.Name) == "" || len(s.Name) > 200 {
		return Errorf(EINVALID, "name must be 1–200 characters").On("name").Say("problem_lab_name")
	}
	loc, err := LoadLocation(s.TimeZone)
	if err != nil || s.TimeZone == "" || s.TimeZone == "Local" {
		return Errorf(EINVALID, "time_zone %q is not an IANA time zone such as Europe/Paris", truncate(s.TimeZone, 60)).On("time_zone").Say("problem_time_zone", "Zone", truncate(s.TimeZone, 60))
	}
	s.loc = loc
	if len(s.Currency) != 3 || strings.ContainsFunc(s.Currency, func(r rune) bool { return r < 'A' || r > 'Z' }) {
		return Errorf(EINVALID, "currency must be an ISO 4217 code such as EUR, got %q", truncate(s.Currency, 10)).On("currency").Say("problem_currency", "Got", truncate(s.Currency, 10))
	}
	if s.VATRateBasisPoints < 0 || s.VATRateBasisPoints > 10000 {
		return Errorf(EINVALID, "vat_rate_bp must be between 0 and 10000 (2000 = 20 %%)").On("vat_rate_bp").Say("problem_vat_rate")
	}
	if err := s.OpeningHours.Validate(); err != nil {
		return err
	}
	for _, c := range s.Closures {
		if c.From == (Date{}) || c.To == (Date{}) {
			return Errorf(EINVALID, "each closure needs from and to dates (YYYY-MM-DD, both inclusive)").On("closures").Say("problem_closure_dates")
		}
		if c.To.Before(c.From) {
			return Errorf(EINVALID, "closure %s–%s ends before it starts", c.From, c.To).On("closures").Say("problem_closure_order", "From", c.From, "To", c.To)
		}
	}
	// ToLower maps some non-ASCII runes to ASCII (the Kelvin sign U+212A to k).
	if !validSlug(strings.ToLower(s.InvoicePrefix)) || len(s.InvoicePrefix) > 10 || strings.ContainsFunc(s.InvoicePrefix, func(r rune) bool { return r >= 0x80 }) {
		return Errorf(EINVALID, "invoice_prefix must be 1–10 letters, digits or -").On("invoice_prefix").Say("problem_invoice_prefix")
	}
	if s.BillingIncrementMin < 1 || s.BillingIncrementMin > 60 {
		return Errorf(EINVALID, "billing_increment_minutes must be between 1 and 60").On("billing_increment_minutes").Say("problem_billing_increment")
	}
	if s.Language != "fr" && s.Language != "en" {
		return Errorf(EINVALID, "language must be fr or en").On("language").Say("problem_language")
	}
	if s.PaymentTermsDays < 0 || s.PaymentTermsDays > 60 {
		return Errorf(EINVALID, "payment_terms_days must be between 0 (on receipt) and 60").On("payment_terms_days").Say("problem_payment_terms")
	}
	if s.FreeUnderMinutes < 0 || s.FreeUnderMinutes > 60 {
		return Errorf(EINVALID, "free_under_minutes must be between 0 and 60").On("free_under_minutes").Say("problem_free_under")
	}
	if s.SIRET != "" && (len(s.SIRET) != 14 || strings.ContainsFunc(s.SIRET, func(r rune) bool { return r < '0' || r > '9' })) {
		return Errorf(EINVALID, "siret must be 14 digits").On("siret").Say("problem_siret")
	}
	for _, f := range []struct {
		name, value string
		max         int
	}{{"legal_name", s.LegalName, 200}, {"address", s.Address, 500}, {"vat_number", s.VATNumber, 20}, {"late_penalty", s.LatePenalty, 500}} {
		if len(f.value) > f.max {
			return Errorf(EINVALID, "%s is limited to %d characters", f.name, f.max).On(f.name).Say("problem_text_too_long", "Max", f.max)
		}
	}
	if s.Closures == nil {
		s.Closures = []Closure{}
	}
	if err := s.DefaultRules.Validate(); err != nil {
		// The lab's rules are its default_rules, not a machine's rules.
		var e *Error
		if errors.As(err, &e) && strings.HasPrefix(e.Field, "rules.") {
			e.Field = "default_" + e.Field
		}
		return err
	}
	return nil
}

// ClosedOn reports whether d falls in a closure.
func (s *Settings) ClosedOn(d Date) bool {
	return slices.ContainsFunc(s.Closures, func(c Closure) bool {
		return !d.Before(c.From) && !c.To.Before(d)
	})
}
