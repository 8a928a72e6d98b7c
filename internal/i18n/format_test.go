package i18n

import (
	"testing"
	"time"
)

func TestFormatDateTime(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	montreal, err := time.LoadLocation("America/Montreal")
	if err != nil {
		t.Fatal(err)
	}
	// 13:30 UTC is 14:30 in Paris in winter.
	winter := time.Date(2026, 12, 2, 13, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, lang string
		t          time.Time
		loc        *time.Location
		date, tod  string
		both       string
	}{
		{"fr winter", "fr", winter, paris, "mercredi 2 décembre 2026", "14:30", "mercredi 2 décembre 2026 à 14:30"},
		{"en winter", "en", winter, paris, "Wednesday 2 December 2026", "14:30", "Wednesday 2 December 2026, 14:30"},
		{"fr first of month", "fr", time.Date(2026, 8, 1, 7, 5, 0, 0, time.UTC), paris, "samedi 1er août 2026", "09:05", "samedi 1er août 2026 à 09:05"},
		{"en first of month", "en", time.Date(2026, 8, 1, 7, 5, 0, 0, time.UTC), paris, "Saturday 1 August 2026", "09:05", "Saturday 1 August 2026, 09:05"},
		{"date changes with the zone", "fr", time.Date(2026, 3, 1, 23, 30, 0, 0, time.UTC), paris, "lundi 2 mars 2026", "00:30", "lundi 2 mars 2026 à 00:30"},
		{"another zone", "en", winter, montreal, "Wednesday 2 December 2026", "08:30", "Wednesday 2 December 2026, 08:30"},
		{"nil zone is UTC", "en", winter, nil, "Wednesday 2 December 2026", "13:30", "Wednesday 2 December 2026, 13:30"},
		{"unknown language is English", "de", winter, paris, "Wednesday 2 December 2026", "14:30", "Wednesday 2 December 2026, 14:30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatDate(tc.lang, tc.t, tc.loc); got != tc.date {
				t.Errorf("FormatDate = %q, want %q", got, tc.date)
			}
			if got := FormatTime(tc.lang, tc.t, tc.loc); got != tc.tod {
				t.Errorf("FormatTime = %q, want %q", got, tc.tod)
			}
			if got := FormatDateTime(tc.lang, tc.t, tc.loc); got != tc.both {
				t.Errorf("FormatDateTime = %q, want %q", got, tc.both)
			}
		})
	}
}

func TestFormatMoney(t *testing.T) {
	for _, tc := range []struct {
		name, lang string
		cents      int64
		currency   string
		want       string
	}{
		{"fr euros", "fr", 1250, "EUR", "12,50\u00a0€"},
		{"en euros", "en", 1250, "EUR", "€12.50"},
		{"fr zero", "fr", 0, "EUR", "0,00\u00a0€"},
		{"en cents only", "en", 5, "EUR", "€0.05"},
		{"fr thousands", "fr", 123456, "EUR", "1\u202f234,56\u00a0€"},
		{"en thousands", "en", 123456, "EUR", "€1,234.56"},
		{"en millions", "en", 123456789, "EUR", "€1,234,567.89"},
		{"fr negative", "fr", -1250, "EUR", "-12,50\u00a0€"},
		{"en negative", "en", -1250, "EUR", "-€12.50"},
		{"en dollars", "en", 999, "USD", "$9.99"},
		{"en francs", "en", 1000, "CHF", "CHF\u00a010.00"},
		{"fr francs", "fr", 1000, "CHF", "10,00\u00a0CHF"},
		{"en unknown code", "en", 1000, "SEK", "SEK\u00a010.00"},
		{"fr unknown code", "fr", 1000, "SEK", "10,00\u00a0SEK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatMoney(tc.lang, tc.cents, tc.currency); got != tc.want {
				t.Errorf("FormatMoney(%q, %d, %q) = %q, want %q", tc.lang, tc.cents, tc.currency, got, tc.want)
			}
		})
	}
}

func TestFormatShortDateAndMinutes(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 2, 13, 30, 0, 0, time.UTC)
	for _, tc := range []struct{ name, got, want string }{
		{"fr short", FormatShortDate("fr", at, paris), "mer. 2 déc."},
		{"en short", FormatShortDate("en", at, paris), "Wed 2 Dec"},
		{"fr short february", FormatShortDate("fr", time.Date(2026, 2, 1, 12, 0, 0, 0, paris), paris), "dim. 1 févr."},
		{"minutes", FormatMinutes("fr", 150), "2 h 30"},
		{"minutes short", FormatMinutes("en", 45), "45 min"},
		{"hours", FormatMinutes("en", 120), "2 h"},
		{"hour and five", FormatMinutes("en", 65), "1 h 05"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}
