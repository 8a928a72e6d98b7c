// Package i18n holds FabGate's French and English: the catalog of the web
// pages' messages, and the formatting of dates, times and amounts of money
// for the lab's two languages, French ("fr") and English ("en"), the same
// way in mail and in the web pages. Any other language is formatted as English.
package i18n

import (
	"strconv"
	"strings"
	"time"
)

// French day and month names, written out by hand: the standard library
// knows only English ones, and two small tables are simpler than a locale
// database for two languages.
var (
	frDays   = [...]string{"dimanche", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"}
	frMonths = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}
)

// inLoc returns t in loc (UTC when loc is nil).
func inLoc(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc)
}

// FormatDate formats the calendar date of t in loc with the day of the
// week: "mercredi 2 décembre 2026" (fr), "Wednesday 2 December 2026" (en).
func FormatDate(lang string, t time.Time, loc *time.Location) string {
	t = inLoc(t, loc)
	if lang == "fr" {
		day := strconv.Itoa(t.Day())
		if t.Day() == 1 {
			day = "1er" // French writes the first of the month as an ordinal
		}
		return frDays[t.Weekday()] + " " + day + " " + frMonths[t.Month()-1] + " " + strconv.Itoa(t.Year())
	}
	return t.Format("Monday 2 January 2006")
}

// FormatTime formats the time of day of t in loc, on 24 hours in both
// languages: "14:30".
func FormatTime(lang string, t time.Time, loc *time.Location) string {
	return inLoc(t, loc).Format("15:04")
}

// FormatDateTime formats t in loc: "mercredi 2 décembre 2026 à 14:30" (fr),
// "Wednesday 2 December 2026, 14:30" (en).
func FormatDateTime(lang string, t time.Time, loc *time.Location) string {
	sep := ", "
	if lang == "fr" {
		sep = " à "
	}
	return FormatDate(lang, t, loc) + sep + FormatTime(lang, t, loc)
}

// currencySymbols are the symbols of the currencies a lab is likely to
// use; others are written with their ISO 4217 code.
var currencySymbols = map[string]string{"EUR": "€", "USD": "$", "GBP": "£"}

// FormatMoney formats an amount in cents of currency (ISO 4217): "12,50 €"
// and "1 234,50 €" (fr, with a narrow no-break space between thousands and a
// no-break space before the symbol), "€12.50" and "€1,234.50" (en).
// Negative amounts get a leading minus sign.
func FormatMoney(lang string, cents int64, currency string) string {
	sym, ok := currencySymbols[currency]
	if !ok {
		sym = currency
	}
	neg := cents < 0
	if neg {
		cents = -cents
	}
	units, frac := cents/100, cents%100
	thousands, decimal := ",", "."
	if lang == "fr" {
		thousands, decimal = "\u202f", ","
	}
	num := groupDigits(strconv.FormatInt(units, 10), thousands) + decimal + twoDigits(frac)
	var out string
	switch {
	case lang == "fr":
		out = num + "\u00a0" + sym
	case !ok:
		out = sym + "\u00a0" + num // a code, not a symbol: "CHF 12.50"
	default:
		out = sym + num
	}
	if neg {
		return "-" + out
	}
	return out
}

// groupDigits separates groups of three digits with sep.
func groupDigits(digits, sep string) string {
	if len(digits) <= 3 {
		return digits
	}
	var b strings.Builder
	head := len(digits) % 3
	if head > 0 {
		b.WriteString(digits[:head])
	}
	for i := head; i < len(digits); i += 3 {
		if b.Len() > 0 {
			b.WriteString(sep)
		}
		b.WriteString(digits[i : i+3])
	}
	return b.String()
}

func twoDigits(n int64) string {
	if n < 10 {
		return "0" + strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10)
}

// frShortMonths are the French abbreviations of the months.
var frShortMonths = [...]string{"janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."}

// FormatShortDate formats t's day in loc briefly: "mer. 2 déc." (fr),
// "Wed 2 Dec" (en).
func FormatShortDate(lang string, t time.Time, loc *time.Location) string {
	t = inLoc(t, loc)
	if lang == "fr" {
		return frDays[t.Weekday()][:3] + ". " + strconv.Itoa(t.Day()) + " " + frShortMonths[t.Month()-1]
	}
	return t.Format("Mon 2 Jan")
}

// FormatMinutes formats a duration in minutes: "2 h 30", "2 h", "45 min"
// (the same in both languages).
func FormatMinutes(lang string, minutes int) string {
	h, m := minutes/60, minutes%60
	switch {
	case h == 0:
		return strconv.Itoa(m) + " min"
	case m == 0:
		return strconv.Itoa(h) + " h"
	}
	return strconv.Itoa(h) + " h " + twoDigits(int64(m))
}
