package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// outboxPages registers the outbox page (staff): when the server keeps its
// mail (smtp_url outbox:, the demo lab), staff read what it sent. The page
// reads the messages from GET /api/v1/outbox in the browser, as that API
// answers them (404 when mail goes out by SMTP).
func (s *Server) outboxPages(g *gin.RouterGroup) {
	g.GET("/staff/outbox", s.outboxPage)
}

func (s *Server) outboxPage(c *gin.Context) {
	s.render(c, http.StatusOK, "outbox", "adm_outbox_title", nil)
}
