package httpapi

import "github.com/gin-gonic/gin"

// makerPages registers the pages of the maker area (members with fablab.RoleMaker
// or above; the group already checks it).
func (s *Server) makerPages(g *gin.RouterGroup) {
}
