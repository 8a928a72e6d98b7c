package i18n

import (
	"strconv"
	"strings"
	"time"
)

var (
	frDays        = [...]string{"dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"}
	frMonths      = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}
	frShortMonths = [...]string{"janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."}
)

// FormatDate writes t's day in loc: "mercredi 2 décembre 2026",
// "Wednesday 2 December 2026".
func FormatDate(lang string, t time.Time, loc *time.Location) string {
	t = t.In(loc)
	if lang == "fr" {
		day := strconv.Itoa(t.Day())
		if t.Day() == 1 {
			day = "1er"
		}
		return frDays[t.Weekday()] + " " + day + " " + frMonths[t.Month()-1] + " " + strconv.Itoa(t.Year())
	}
	return t.Format("Monday 2 January 2006")
}

// FormatShortDate writes t's day in loc briefly: "mer. 2 déc.", "Wed 2 Dec".
func FormatShortDate(lang string, t time.Time, loc *time.Location) string {
	t = t.In(loc)
	if lang == "fr" {
		return frDays[t.Weekday()][:3] + ". " + strconv.Itoa(t.Day()) + " " + frShortMonths[t.Month()-1]
	}
	return t.Format("Mon 2 Jan")
}

// FormatTime writes t's time of day in loc, 24-hour in both languages: "14:30".
func FormatTime(lang string, t time.Time, loc *time.Location) string {
	return t.In(loc).Format("15:04")
}

// FormatDateTime writes t in loc: "mercredi 2 décembre 2026 à 14:30",
// "Wednesday 2 December 2026, 14:30".
func FormatDateTime(lang string, t time.Time, loc *time.Location) string {
	if lang == "fr" {
		return FormatDate(lang, t, loc) + " à " + FormatTime(lang, t, loc)
	}
	return FormatDate(lang, t, loc) + ", " + FormatTime(lang, t, loc)
}

// FormatMoney writes an amount of cents: "12,50 €" in French, "€12.50" in
// English (a narrow no-break space groups thousands in French).
func FormatMoney(lang string, cents int64, currency string) string {
	neg := cents < 0
	if neg {
		cents = -cents
	}
	units, rest := cents/100, cents%100
	digits := strconv.FormatInt(units, 10)
	sep, dec := ",", "."
	if lang == "fr" {
		sep, dec = "\u202f", ","
	}
	var b strings.Builder
	for i, r := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteString(sep)
		}
		b.WriteRune(r)
	}
	num := b.String() + dec + strconv.FormatInt(rest/10, 10) + strconv.FormatInt(rest%10, 10)
	sym := currencySymbol(currency)
	var s string
	if lang == "fr" {
		s = num + "\u00a0" + sym
	} else {
		s = sym + num
	}
	if neg {
		s = "−" + s
	}
	return s
}

func currencySymbol(c string) string {
	switch strings.ToUpper(c) {
	case "", "EUR":
		return "€"
	case "USD":
		return "$"
	case "GBP":
		return "£"
	case "CHF":
		return "CHF\u00a0"
	}
	return strings.ToUpper(c) + "\u00a0"
}

// FormatMinutes writes a duration of minutes: "2 h 30", "45 min".
func FormatMinutes(lang string, minutes int) string {
	h, m := minutes/60, minutes%60
	switch {
	case h == 0:
		return strconv.Itoa(m) + " min"
	case m == 0:
		return strconv.Itoa(h) + " h"
	}
	return strconv.Itoa(h) + " h " + pad2(m)
}

func pad2(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}
