package httpapi

import "github.com/gin-gonic/gin"

// staffPages registers the pages of the staff area (members with fablab.RoleStaff
// or above; the group already checks it).
func (s *Server) staffPages(g *gin.RouterGroup) {
}
