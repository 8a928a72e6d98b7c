package httpapi

import (
	_ "embed"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

//go:embed openapi.json
var openapiDoc []byte

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
