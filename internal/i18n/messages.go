package i18n

// The web pages' texts are message files (web/i18n/<area>.<lang>.toml)
// read with go-i18n into a Catalog.

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	"github.com/pelletier/go-toml/v2"
	"golang.org/x/text/language"
)

// Languages are the languages FabGate speaks, the first being the fallback.
var Languages = []string{"en", "fr"}

// Supported reports whether lang is one of Languages.
func Supported(lang string) bool {
	for _, l := range Languages {
		if l == lang {
			return true
		}
	}
	return false
}

// Catalog is the set of messages of every language.
type Catalog struct {
	bundle *i18n.Bundle
	// plain holds the messages without template parameters, per language:
	// the common case, answered without go-i18n's template machinery.
	plain map[string]map[string]string
	loc   map[string]*i18n.Localizer
	ids   map[string]map[string]bool // language → message ids
}

// Load reads every *.toml file of dir in fsys. File names end in
// .<lang>.toml (e.g. pages.fr.toml).
func Load(fsys fs.FS, dir string) (*Catalog, error) {
	b := i18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	c := &Catalog{bundle: b, plain: map[string]map[string]string{}, loc: map[string]*i18n.Localizer{}, ids: map[string]map[string]bool{}}
	names, err := fs.Glob(fsys, path.Join(dir, "*.toml"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("i18n: no message files in %s", dir)
	}
	for _, name := range names {
		mf, err := b.LoadMessageFileFS(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("i18n: %s: %w", name, err)
		}
		lang := mf.Tag.String()
		if !Supported(lang) {
			return nil, fmt.Errorf("i18n: %s: language %q is not one of %v", name, lang, Languages)
		}
		if c.plain[lang] == nil {
			c.plain[lang], c.ids[lang] = map[string]string{}, map[string]bool{}
		}
		for _, m := range mf.Messages {
			if c.ids[lang][m.ID] {
				return nil, fmt.Errorf("i18n: %s: message %q is defined twice for %s", name, m.ID, lang)
			}
			c.ids[lang][m.ID] = true
			if m.Other != "" && !strings.Contains(m.Other, "{{") && m.One == "" {
				c.plain[lang][m.ID] = m.Other
			}
		}
	}
	for _, l := range Languages {
		c.loc[l] = i18n.NewLocalizer(b, l)
	}
	return c, nil
}

// T returns message id in lang. args are name/value pairs for the
// message's template ({{.Name}}); a "Count" argument also picks the plural
// form. A missing message is shown as ⟦id⟧, which tests look for.
func (c *Catalog) T(lang, id string, args ...any) string {
	if len(args) == 0 {
		if s, ok := c.plain[lang][id]; ok {
			return s
		}
	}
	data := map[string]any{}
	var count any
	for i := 0; i+1 < len(args); i += 2 {
		k := fmt.Sprint(args[i])
		data[k] = args[i+1]
		if k == "Count" {
			count = args[i+1]
		}
	}
	l := c.loc[lang]
	if l == nil {
		l = c.loc[Languages[0]]
	}
	s, err := l.Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: data, PluralCount: count})
	if err != nil || s == "" {
		return "⟦" + id + "⟧"
	}
	return s
}

// Has reports whether lang has message id.
func (c *Catalog) Has(lang, id string) bool { return c.ids[lang][id] }

// IDs returns the message ids of lang, sorted.
func (c *Catalog) IDs(lang string) []string {
	ids := make([]string, 0, len(c.ids[lang]))
	for id := range c.ids[lang] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
