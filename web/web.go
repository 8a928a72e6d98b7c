// Package web holds FabGate's HTML templates and static files, embedded in
// the binary so that `go build` is all a deployment needs.
package web

import (
	"embed"
	"io/fs"
)

// all: keeps the partials (templates/_*.html), which go:embed leaves out of
// a directory by default.
//
//go:embed all:templates static i18n
var files embed.FS

// Templates returns the HTML templates (templates/*.html).
func Templates() fs.FS {
	sub, err := fs.Sub(files, "templates")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// Static returns the static files (CSS, JavaScript, vendored libraries).
func Static() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err)
	}
	return sub
}

// Messages returns the message files of the pages (i18n/<area>.<lang>.toml).
func Messages() fs.FS {
	sub, err := fs.Sub(files, "i18n")
	if err != nil {
		panic(err)
	}
	return sub
}
