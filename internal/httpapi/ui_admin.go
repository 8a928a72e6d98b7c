package httpapi

import "github.com/gin-gonic/gin"

// adminPages registers the pages of the admin area (members with fablab.RoleAdmin
// or above; the group already checks it).
func (s *Server) adminPages(g *gin.RouterGroup) {
}
