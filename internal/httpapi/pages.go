package httpapi

import (
	_ "embed"
	"html/template"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/web"
)

//go:embed openapi.json
var openapiDoc []byte

var pages = template.Must(template.ParseFS(web.Templates(), "*.html"))

func (s *Server) openapi(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openapiDoc)
}

// lang picks fr or en from ?lang= or Accept-Language, defaulting to the lab's.
func lang(c *gin.Context, def string) string {
	if l := c.Query("lang"); l == "fr" || l == "en" {
		return l
	}
	for _, part := range strings.Split(c.GetHeader("Accept-Language"), ",") {
		tag := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
		switch {
		case strings.HasPrefix(tag, "fr"):
			return "fr"
		case strings.HasPrefix(tag, "en"):
			return "en"
		}
	}
	return def
}

func (s *Server) landing(c *gin.Context) {
	ctx := c.Request.Context()
	st, err := s.store.Settings(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	ms, err := s.store.Machines(ctx, 0, 1000)
	if err != nil {
		s.fail(c, err)
		return
	}
	var buf strings.Builder
	err = pages.ExecuteTemplate(&buf, "landing.html", struct {
		Lang, LabName, Version string
		Machines               []fablab.Machine
	}{lang(c, st.Language), st.Name, s.version, ms.Items})
	if err != nil {
		s.fail(c, fablab.Internal(err, "render landing page"))
		return
	}
	c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(buf.String()))
}
