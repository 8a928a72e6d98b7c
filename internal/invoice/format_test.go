package invoice

import (
	"strings"
	"testing"
	"time"
)

func TestFrenchNumbers(t *testing.T) {
	for cents, want := range map[int64]string{
		0: "0,00", 5: "0,05", -5: "-0,05", 100: "1,00", 99999: "999,99", 100000: "1 000,00",
		123456789: "1 234 567,89", -123456: "-1 234,56", 100000000000: "1 000 000 000,00",
		-9223372036854775808: "-92 233 720 368 547 758,08",
	} {
		if got := strings.ReplaceAll(frenchNumber(cents), nbsp, " "); got != want {
			t.Errorf("frenchNumber(%d) = %q, want %q", cents, got, want)
		}
	}
	if got := frenchMoney(123456, "EUR"); got != "1\u00a0234,56\u00a0€" {
		t.Errorf("frenchMoney = %q", got)
	}
	if got := frenchMoney(100, "CHF"); got != "1,00\u00a0CHF" {
		t.Errorf("frenchMoney CHF = %q", got)
	}
	for bp, want := range map[int]string{0: "0 %", 550: "5,5 %", 1000: "10 %", 2000: "20 %", 210: "2,1 %", 1975: "19,75 %", 5: "0,05 %"} {
		if got := strings.ReplaceAll(frenchRate(bp), nbsp, " "); got != want {
			t.Errorf("frenchRate(%d) = %q, want %q", bp, got, want)
		}
	}
}

func TestPaymentTermsInTheLabsDays(t *testing.T) {
	loc := paris(t)
	// 23:30 on 31 March in Paris; due 00:30 on 1 April: the next day.
	issued := time.Date(2026, time.March, 31, 23, 30, 0, 0, loc)
	for due, want := range map[time.Time]string{
		issued:                       "Paiement à réception",
		issued.Add(20 * time.Minute): "Paiement à réception",
		issued.Add(time.Hour):        "Paiement à 1 jour",
		issued.AddDate(0, 0, 30):     "Paiement à 30 jours",
	} {
		if got := paymentTerms(issued, due, loc); got != want {
			t.Errorf("issued %v, due %v: %q, want %q", issued, due, got, want)
		}
	}
	// Across the change to summer time (29 March 2026): a 47-hour gap is
	// two days.
	spring := time.Date(2026, time.March, 28, 12, 0, 0, 0, loc)
	if got := paymentTerms(spring, spring.AddDate(0, 0, 2), loc); got != "Paiement à 2 jours" {
		t.Errorf("over the clock change: %q", got)
	}
	if got := frenchDate(time.Date(2026, time.March, 31, 22, 30, 0, 0, time.UTC), loc); got != "01/04/2026" {
		t.Errorf("frenchDate in the lab's zone: %q", got)
	}
}

func TestSentence(t *testing.T) {
	for in, want := range map[string]string{"Texte": "Texte.", "Texte.": "Texte.", "(art. 1)": "(art. 1)", " x ": "x.", "": ""} {
		if got := sentence(in); got != want {
			t.Errorf("sentence(%q) = %q, want %q", in, got, want)
		}
	}
}
