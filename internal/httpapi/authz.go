package httpapi

import (
	"maps"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/fablab"
)

// staffGroup is the tariff group of the lab's team (what `fabgate user add`
// gives admins and staff): moving anyone into or out of it changes what they
// pay, which is the admins' to decide.
const staffGroup = "staff"

// authorize is the one rule of what staff may do beyond what their routes
// admit, applied by every handler that changes a member or a machine:
// staff act on makers; anything touching an admin or staff account, a role,
// a price, a tariff group or a device binding is the admins'. Admins may do
// everything. target is the member acted on (nil when none); touches names
// the admin-only things the request would change (see adminTouches).
// Errors: EFORBIDDEN.
func authorize(c *gin.Context, target *fablab.Member, touches []string) error {
	if member(c).Role == fablab.RoleAdmin {
		return nil
	}
	if target != nil && target.Role != fablab.RoleMaker {
		return fablab.Errorf(fablab.EFORBIDDEN, "only an admin can act on a %s account", target.Role)
	}
	if len(touches) > 0 {
		return fablab.Errorf(fablab.EFORBIDDEN, "only an admin can change %s", strings.Join(touches, ", "))
	}
	return nil
}

// adminTouches names what the request would change on cur that only an
// admin may: the role, or a move into or out of the staff tariff group.
func (r *memberRequest) adminTouches(cur fablab.Member) []string {
	var out []string
	if r.Role != nil && *r.Role != cur.Role {
		out = append(out, "a role")
	}
	if r.Group != nil && *r.Group != cur.Group && (*r.Group == staffGroup || cur.Group == staffGroup) {
		out = append(out, "membership of the staff tariff group")
	}
	return out
}

// adminTouches names what creating the organisation would touch that only
// an admin may: the staff tariff group, which would bill its members as the
// lab's team.
func (r *organisationRequest) adminTouches() []string {
	if r.Group == staffGroup {
		return []string{"membership of the staff tariff group"}
	}
	return nil
}

// adminTouches names what the request would change on cur that only an
// admin may: the device bound to the machine, and its prices.
func (r *machineRequest) adminTouches(cur fablab.Machine) []string {
	var out []string
	if r.DeviceID != nil && *r.DeviceID != cur.DeviceID {
		out = append(out, "device_id")
	}
	if r.Prices != nil && !maps.Equal(*r.Prices, cur.Prices) {
		out = append(out, "prices")
	}
	if r.MinimumChargeCents != nil && *r.MinimumChargeCents != cur.MinimumChargeCents {
		out = append(out, "minimum_charge_cents")
	}
	if r.NoShowFeeCents != nil && *r.NoShowFeeCents != cur.NoShowFeeCents {
		out = append(out, "no_show_fee_cents")
	}
	return out
}

// authorizeOn applies authorize to the member with the given id, with
// nothing admin-only touched. Errors: ENOTFOUND, EFORBIDDEN.
func (s *Server) authorizeOn(c *gin.Context, id fablab.ID) error {
	if member(c).Role == fablab.RoleAdmin {
		return nil
	}
	target, err := s.store.Member(c.Request.Context(), id)
	if err != nil {
		return err
	}
	return authorize(c, &target, nil)
}

// organisationTouches names the admin-only thing a member request touches
// through its organisation: an organisation in the staff tariff group bills
// its members as the lab's team. It is looked up before the member's update
// (which must not read in its transaction); asking for an organisation the
// member already has counts too, and staff never need to.
func (s *Server) organisationTouches(c *gin.Context, r *memberRequest) ([]string, error) {
	if r.OrganisationID == nil || *r.OrganisationID == 0 || member(c).Role == fablab.RoleAdmin {
		return nil, nil
	}
	o, err := s.store.Organisation(c.Request.Context(), *r.OrganisationID)
	if err != nil {
		return nil, err
	}
	if o.Group == staffGroup {
		return []string{"membership of the staff tariff group"}, nil
	}
	return nil, nil
}
