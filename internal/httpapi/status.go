package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/fablab"
)

// Live machine statuses (machineStatus.Status), in the order they are
// decided: a retired machine is retired whatever else holds; an open
// session makes it in use (staff may use a machine in maintenance); then
// maintenance (the machine's state, or a maintenance block now); then
// offline, when the machine's device is not online; else available. A
// machine without a device is never offline: nothing at it is waiting for
// the server.
const (
	statusAvailable   = "available"
	statusInUse       = "in_use"
	statusMaintenance = "maintenance"
	statusRetired     = "retired"
	statusOffline     = "offline"
)

// machineStatus is one machine's live status as GET /machines/status shows
// it. Who uses the machine (MemberID, SessionID) is shown to staff, and to
// the member whose session it is, only.
type machineStatus struct {
	MachineID    fablab.ID  `json:"machine_id"`
	MachineName  string     `json:"machine_name"`
	Kind         string     `json:"kind"`
	Status       string     `json:"status"`
	MachineState string     `json:"machine_state"` // the stored state: available, maintenance, retired
	DeviceID     string     `json:"device_id,omitempty"`
	DeviceOnline bool       `json:"device_online"`
	InUseSince   *time.Time `json:"in_use_since,omitempty"`
	InUseUntil   *time.Time `json:"in_use_until,omitempty"`
	// MaintenanceUntil is the end of the maintenance block running now.
	MaintenanceUntil *time.Time `json:"maintenance_until,omitempty"`
	SessionID        fablab.ID  `json:"session_id,omitempty"`
	MemberID         fablab.ID  `json:"member_id,omitempty"`
}

// machineStatuses returns the live status of every machine, by id, as
// viewer may see it. It reads the machines, the open-session index (not
// the sessions) and the access engine's in-memory device states: no scan
// grows with the lab's history.
func (s *Server) machineStatuses(ctx context.Context, viewer fablab.Member) ([]machineStatus, error) {
	p, err := s.store.Machines(ctx, 0, 10_000)
	if err != nil {
		return nil, err
	}
	open, err := s.store.OpenSessions(ctx)
	if err != nil {
		return nil, err
	}
	byMachine := make(map[fablab.ID]*fablab.Session, len(open))
	for i := range open {
		byMachine[open[i].MachineID] = &open[i]
	}
	var devices map[string]fablab.DeviceState
	if s.access != nil {
		devices = s.access.DeviceStates()
	}
	staff := viewer.Role.AtLeast(fablab.RoleStaff)
	now := s.now()
	out := make([]machineStatus, 0, len(p.Items))
	for i := range p.Items {
		m := &p.Items[i]
		st := machineStatus{MachineID: m.ID, MachineName: m.Name, Kind: m.Kind, MachineState: m.State, DeviceID: m.DeviceID}
		if m.DeviceID != "" {
			st.DeviceOnline = devices[m.DeviceID].Online
		}
		for _, b := range m.Maintenance {
			if !now.Before(b.Start) && now.Before(b.End) {
				end := b.End
				st.MaintenanceUntil = &end
				break
			}
		}
		sess := byMachine[m.ID]
		if sess != nil {
			since, until := sess.Started, sess.Until
			st.InUseSince, st.InUseUntil = &since, &until
			if staff || sess.MemberID == viewer.ID {
				st.SessionID, st.MemberID = sess.ID, sess.MemberID
			}
		}
		switch {
		case m.State == fablab.MachineRetired:
			st.Status = statusRetired
		case sess != nil:
			st.Status = statusInUse
		case m.State == fablab.MachineMaintenance || st.MaintenanceUntil != nil:
			st.Status = statusMaintenance
		case m.DeviceID != "" && !st.DeviceOnline:
			st.Status = statusOffline
		default:
			st.Status = statusAvailable
		}
		out = append(out, st)
	}
	return out, nil
}

func (s *Server) machineStatus(c *gin.Context) {
	out, err := s.machineStatuses(c.Request.Context(), member(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}
