package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/access"
	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/events"
	"github.com/fabgate/fabgate/internal/fablab"
)

// AccessEngine is what the API needs of the access engine.
type AccessEngine interface {
	Tap(ctx context.Context, dev, uid string) (access.Decision, error)
	EndSession(ctx context.Context, id fablab.ID, reason string, by fablab.ID) (fablab.Session, error)
	DeviceStates() map[string]fablab.DeviceState
	AllowlistsChanged()
	PublishAllowlists(ctx context.Context)
}

// accessChanged tells the access engine that who may use which machine may
// have changed (members, badges, qualifications, machines, devices), so the
// devices' offline allow-lists are published again.
func (s *Server) accessChanged() {
	if s.access != nil {
		s.access.AllowlistsChanged()
	}
}

// deviceView is a device as the API shows it: the registry entry and what
// the server knows of it now.
type deviceView struct {
	fablab.Device
	fablab.DeviceState
}

type deviceRequest struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	MachineID fablab.ID `json:"machine_id"`
}

type deviceCreated struct {
	deviceView
	MQTTUsername string `json:"mqtt_username"`
	MQTTSecret   string `json:"mqtt_secret"`
	deviceKey           // the keys a device needs to match badges offline (protocol §8.1)
}

func (s *Server) view(d fablab.Device) deviceView {
	v := deviceView{Device: d}
	if s.access != nil {
		v.DeviceState = s.access.DeviceStates()[d.ID]
	}
	return v
}

func (s *Server) listDevices(c *gin.Context) {
	ds, err := s.store.Devices(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]deviceView, len(ds))
	for i, d := range ds {
		out[i] = s.view(d)
	}
	c.JSON(http.StatusOK, out)
}

// newDeviceSecret makes a device secret and its stored hash.
func (s *Server) newDeviceSecret() (secret, hash string, err error) {
	if s.hashSecret == nil {
		return "", "", fablab.Errorf(fablab.EINTERNAL, "device secrets cannot be hashed: no MQTT broker is configured")
	}
	secret = auth.NewToken()
	hash, err = s.hashSecret(secret)
	if err != nil {
		return "", "", fablab.Internal(err, "hash device secret")
	}
	return secret, hash, nil
}

func (s *Server) createDevice(c *gin.Context) {
	var req deviceRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	secret, hash, err := s.newDeviceSecret()
	if err != nil {
		s.fail(c, err)
		return
	}
	d, err := s.store.CreateDevice(c.Request.Context(), fablab.Device{ID: req.ID, Kind: req.Kind, MachineID: req.MachineID, SecretHash: hash})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.accessChanged()
	s.log.Info("device registered", "device", d.ID, "machine", d.MachineID, "by", member(c).ID)
	out, err := s.deviceCreatedView(c.Request.Context(), d, secret)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, out)
}

func (s *Server) getDevice(c *gin.Context) {
	d, err := s.store.Device(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s.view(d))
}

type devicePatch struct {
	Kind      *string    `json:"kind"`
	MachineID *fablab.ID `json:"machine_id"` // bind to this machine
	Unbind    bool       `json:"unbind"`     // drive no machine
}

func (s *Server) patchDevice(c *gin.Context) {
	var req devicePatch
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	d, err := s.store.UpdateDevice(c.Request.Context(), c.Param("id"), func(d *fablab.Device) error {
		set(&d.Kind, req.Kind)
		set(&d.MachineID, req.MachineID)
		if req.Unbind {
			d.MachineID = 0
		}
		return nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.accessChanged()
	s.log.Info("device updated", "device", d.ID, "machine", d.MachineID, "by", member(c).ID)
	c.JSON(http.StatusOK, s.view(d))
}

// DeviceConnections is what the API needs of the embedded broker.
type DeviceConnections interface {
	// DisconnectDevice closes the device's connections (and any login of
	// it being checked now) and returns how many it closed.
	DisconnectDevice(id string) int
}

// disconnect cuts a device whose credentials were just revoked, so that it
// must log in again against the store.
func (s *Server) disconnect(id string) int {
	if s.connections == nil {
		return 0
	}
	return s.connections.DisconnectDevice(id)
}

// rotateDeviceSecret gives a device a new MQTT secret, shown once; the old
// one stops working at once: the device's open connection is cut.
func (s *Server) rotateDeviceSecret(c *gin.Context) {
	secret, hash, err := s.newDeviceSecret()
	if err != nil {
		s.fail(c, err)
		return
	}
	d, err := s.store.UpdateDevice(c.Request.Context(), c.Param("id"), func(d *fablab.Device) error {
		d.SecretHash = hash
		return nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	n := s.disconnect(d.ID)
	s.log.Info("device secret rotated", "device", d.ID, "connections_cut", n, "by", member(c).ID)
	out, err := s.deviceCreatedView(c.Request.Context(), d, secret)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// disableDevice stops a device from logging in to the broker and cuts its
// open connection. Its record, secret and machine binding are kept.
func (s *Server) disableDevice(c *gin.Context) { s.setDeviceDisabled(c, true) }

// enableDevice lets a disabled device log in again with its secret.
func (s *Server) enableDevice(c *gin.Context) { s.setDeviceDisabled(c, false) }

func (s *Server) setDeviceDisabled(c *gin.Context, disabled bool) {
	d, err := s.store.UpdateDevice(c.Request.Context(), c.Param("id"), func(d *fablab.Device) error {
		d.Disabled = disabled
		return nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	if disabled {
		n := s.disconnect(d.ID)
		s.log.Info("device disabled", "device", d.ID, "connections_cut", n, "by", member(c).ID)
	} else {
		s.log.Info("device enabled", "device", d.ID, "by", member(c).ID)
	}
	c.JSON(http.StatusOK, s.view(d))
}

// deleteDevice removes a device and its machine binding, and cuts its
// connection. A machine with an open session keeps its device (409).
func (s *Server) deleteDevice(c *gin.Context) {
	d, err := s.store.DeleteDevice(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	n := s.disconnect(d.ID)
	s.accessChanged()
	s.log.Info("device deleted", "device", d.ID, "machine", d.MachineID, "connections_cut", n, "by", member(c).ID)
	c.Status(http.StatusNoContent)
}

type tapRequest struct {
	UID string `json:"uid"`
}

type tapResult struct {
	Decision string    `json:"decision"` // grant, deny, tap_out, force_close
	Reason   string    `json:"reason,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	Message  string    `json:"message,omitempty"` // what the reader shows, for deny
	Until    time.Time `json:"until,omitzero"`
}

// simulateTap decides a tap as if the device's reader had read uid (the
// demo's "tap a badge" button). Only when the server allows it (--demo).
func (s *Server) simulateTap(c *gin.Context) {
	if !s.simulateTaps {
		s.fail(c, fablab.Errorf(fablab.EFORBIDDEN, "simulated taps are only allowed in the demo lab (fabgate serve --demo)"))
		return
	}
	if s.access == nil {
		s.fail(c, fablab.Errorf(fablab.EINTERNAL, "access control is not running"))
		return
	}
	var req tapRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	d, err := s.access.Tap(c.Request.Context(), c.Param("id"), req.UID)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := tapResult{Reason: d.Reason, Detail: d.Detail, Message: d.Message}
	switch d.Outcome {
	case access.Grant:
		out.Decision, out.Until = "grant", d.Until
	case access.Deny:
		out.Decision = "deny"
	case access.TapOut:
		out.Decision = "tap_out"
	case access.ForceClose:
		out.Decision = "force_close"
	}
	s.log.Info("simulated tap", "device", c.Param("id"), "decision", out.Decision, "by", member(c).ID)
	c.JSON(http.StatusOK, out)
}

func (s *Server) listSessions(c *gin.Context) {
	ctx := c.Request.Context()
	me := member(c)
	if c.Query("active") == "true" {
		if !isStaff(c) {
			s.fail(c, fablab.Errorf(fablab.EFORBIDDEN, "the lab's open sessions are for staff; makers list their own with GET /sessions"))
			return
		}
		ss, err := s.store.OpenSessions(ctx)
		if err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, ss)
		return
	}
	if v := c.Query("active"); v != "" && v != "false" {
		s.fail(c, fablab.Errorf(fablab.EINVALID, "active must be true or false").On("active"))
		return
	}
	machineID, err := queryID(c, "machine_id")
	if err != nil {
		s.fail(c, err)
		return
	}
	memberID, err := queryID(c, "member_id")
	if err != nil {
		s.fail(c, err)
		return
	}
	if !isStaff(c) {
		if memberID != 0 && memberID != me.ID || machineID != 0 {
			s.fail(c, fablab.Errorf(fablab.EFORBIDDEN, "makers see only their own sessions"))
			return
		}
		memberID = me.ID
	}
	from, to, err := queryRange(c, s.now().UTC().Add(-30*24*time.Hour), 31*24*time.Hour)
	if err != nil {
		s.fail(c, err)
		return
	}
	var ss []fablab.Session
	switch {
	case machineID != 0:
		ss, err = s.store.SessionsOfMachine(ctx, machineID, from, to)
		if memberID != 0 { // both filters apply
			ss = slices.DeleteFunc(ss, func(x fablab.Session) bool { return x.MemberID != memberID })
		}
	case memberID != 0:
		ss, err = s.store.SessionsOfMember(ctx, memberID, from, to)
	default:
		ss, err = s.store.SessionsStarted(ctx, from, to, 10_000)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, ss)
}

func (s *Server) endSession(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		s.fail(c, err)
		return
	}
	if s.access == nil {
		s.fail(c, fablab.Errorf(fablab.EINTERNAL, "access control is not running"))
		return
	}
	sess, err := s.access.EndSession(c.Request.Context(), id, fablab.EndStaff, member(c).ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("session ended by staff", "session", id, "by", member(c).ID)
	c.JSON(http.StatusOK, sess)
}

func (s *Server) unknownTaps(c *gin.Context) {
	ts, err := s.store.UnknownTaps(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, ts)
}

func (s *Server) audit(c *gin.Context) {
	f := bolt.AuditFilter{Kind: c.Query("kind"), Action: c.Query("action"), DeviceID: c.Query("device_id")}
	var err error
	if f.MachineID, err = queryID(c, "machine_id"); err != nil {
		s.fail(c, err)
		return
	}
	if f.MemberID, err = queryID(c, "member_id"); err != nil {
		s.fail(c, err)
		return
	}
	if f.Limit, err = queryInt(c, "limit", 200, 1, 5000); err != nil {
		s.fail(c, err)
		return
	}
	if f.From, f.To, err = queryRange(c, s.now().UTC().Add(-7*24*time.Hour), 7*24*time.Hour+time.Minute); err != nil {
		s.fail(c, err)
		return
	}
	evs, err := s.store.AuditEvents(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, evs)
}

// events streams live lab events as Server-Sent Events until the client
// goes away: every event to staff, to a maker only what events.ForMember
// lets them see (machine and device state, their own sessions).
func (s *Server) events(c *gin.Context) {
	if s.hub == nil {
		s.fail(c, fablab.Errorf(fablab.EINTERNAL, "live events are not running"))
		return
	}
	me, staff := member(c), isStaff(c)
	ch, stop := s.hub.Subscribe(64)
	defer stop()
	c.Header("Content-Type", "text/event-stream")
	c.Header("Cache-Control", "no-store")
	c.Header("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	fmt.Fprint(c.Writer, ": fabgate live events\n\n")
	c.Writer.Flush()
	keepalive := time.NewTicker(20 * time.Second)
	defer keepalive.Stop()
	c.Stream(func(w io.Writer) bool {
		select {
		case <-c.Request.Context().Done():
			return false
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
			return true
		case e, ok := <-ch:
			if !ok {
				return false
			}
			if !staff {
				if e, ok = events.ForMember(e, me.ID); !ok {
					return true
				}
			}
			data, err := json.Marshal(e)
			if err != nil {
				return true
			}
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Type, data)
			return true
		}
	})
}
