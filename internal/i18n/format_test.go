package i18n

import (
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 2, 13, 30, 0, 0, time.UTC)   // 14:30 in Paris
	first := time.Date(2026, 3, 31, 23, 5, 0, 0, time.UTC) // 1 April 01:05 in Paris (summer time)
	for _, tc := range []struct{ name, got, want string }{
		{"fr datetime", FormatDateTime("fr", at, paris), "mercredi 2 décembre 2026 à 14:30"},
		{"en datetime", FormatDateTime("en", at, paris), "Wednesday 2 December 2026, 14:30"},
		{"fr first", FormatDate("fr", first, paris), "mercredi 1er avril 2026"},
		{"en time summer", FormatTime("en", first, paris), "01:05"},
		{"fr short", FormatShortDate("fr", at, paris), "mer. 2 déc."},
		{"en short", FormatShortDate("en", at, paris), "Wed 2 Dec"},
		{"fr money", FormatMoney("fr", 1250, "EUR"), "12,50\u00a0€"},
		{"en money", FormatMoney("en", 1250, "EUR"), "€12.50"},
		{"fr thousands", FormatMoney("fr", 123456705, "EUR"), "1\u202f234\u202f567,05\u00a0€"},
		{"en thousands", FormatMoney("en", 123456705, "EUR"), "€1,234,567.05"},
		{"negative", FormatMoney("en", -5, "EUR"), "−€0.05"},
		{"minutes", FormatMinutes("fr", 150), "2 h 30"},
		{"minutes short", FormatMinutes("en", 45), "45 min"},
		{"hours", FormatMinutes("en", 120), "2 h"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}
