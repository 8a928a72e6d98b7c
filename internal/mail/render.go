package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
)

// The messages' templates: for each kind and language, KIND.LANG.txt
// defines "subject" and "text" (text/template), and KIND.LANG.html
// defines "body" (html/template, escaped), framed by layout.html.
//
//go:embed templates
var templateFS embed.FS

// Kinds of message.
const (
	KindInvitation = "invitation"
	KindReset      = "reset"
	KindConfirmed  = "confirmed"
	KindCancelled  = "cancelled"
	KindReminder   = "reminder"
	KindNoShow     = "noshow"
)

// Languages are the languages messages are written in; the first is the
// fallback for any other.
var Languages = []string{"fr", "en"}

var kinds = []string{KindInvitation, KindReset, KindConfirmed, KindCancelled, KindReminder, KindNoShow}

type templatePair struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// templates holds every kind and language, parsed at start: a broken
// template fails every test at once, not a mail at run time.
var templates = func() map[string]templatePair {
	out := map[string]templatePair{}
	for _, k := range kinds {
		for _, lang := range Languages {
			name := k + "." + lang
			out[name] = templatePair{
				text: texttemplate.Must(texttemplate.New(name).Option("missingkey=error").ParseFS(templateFS, "templates/"+name+".txt")),
				html: htmltemplate.Must(htmltemplate.New(name).Option("missingkey=error").ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")),
			}
		}
	}
	return out
}()

// View is what the templates show; the times are already formatted for
// the member's language in the lab's time zone.
type View struct {
	Lang      string
	Lab       string // the lab's name
	PublicURL string // without a trailing slash
	Name      string // the member's name
	Link      string // invitation and reset links
	Expires   string // when the link stops working
	Machine   string
	Start     string // date and time
	StartTime string // time only
	End       string
	Release   int    // minutes after the start before an unclaimed booking is released
	Subject   string // filled by Render for the HTML title
}

// Render writes the subject, plain text and HTML of a message of kind in
// v.Lang (French for a language without templates).
func Render(kind string, v View) (subject, text, html string, err error) {
	if v.Lang != "en" {
		v.Lang = "fr"
	}
	t, ok := templates[kind+"."+v.Lang]
	if !ok {
		return "", "", "", fmt.Errorf("mail: no template %s.%s", kind, v.Lang)
	}
	var b bytes.Buffer
	if err := t.text.ExecuteTemplate(&b, "subject", v); err != nil {
		return "", "", "", err
	}
	// A subject is one line: a name with a line break must not add headers
	// (go-mail encodes it, but the rule holds wherever it is shown).
	subject = strings.Join(strings.Fields(b.String()), " ")
	b.Reset()
	if err := t.text.ExecuteTemplate(&b, "text", v); err != nil {
		return "", "", "", err
	}
	text = strings.TrimLeft(b.String(), "\n")
	b.Reset()
	v.Subject = subject
	if err := t.html.ExecuteTemplate(&b, "layout", v); err != nil {
		return "", "", "", err
	}
	return subject, text, b.String(), nil
}
