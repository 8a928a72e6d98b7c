package httpapi

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/fablab"
)

// adminPages registers the pages of the admin area (members with fablab.RoleAdmin
// or above; the group already checks it).
func (s *Server) adminPages(g *gin.RouterGroup) {
	g.GET("/admin/devices", s.devicesPage)
	g.GET("/admin/settings", s.settingsPage)
}

// deviceRow is one device of the devices page: never its secret, which
// only the answer to registering or rotating it carries, once.
type deviceRow struct {
	deviceView
	Machine *fablab.Machine
}

// devicesPage lists the devices with what the server knows of them now,
// and registers, rotates, disables, binds and deletes them through the API.
func (s *Server) devicesPage(c *gin.Context) {
	ctx := c.Request.Context()
	ds, err := s.store.Devices(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	ms, err := s.store.Machines(ctx, 0, 10_000)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	byID := map[fablab.ID]*fablab.Machine{}
	for i := range ms.Items {
		byID[ms.Items[i].ID] = &ms.Items[i]
	}
	rows := make([]deviceRow, len(ds))
	for i, d := range ds {
		rows[i] = deviceRow{deviceView: s.view(d), Machine: byID[d.MachineID]}
	}
	machines := slices.Clone(ms.Items) // byID points into ms.Items: sort a copy
	sort.SliceStable(machines, func(i, j int) bool { return machines[i].Name < machines[j].Name })
	prefix := s.mqttPrefix
	if prefix == "" {
		prefix = "fabgate/v1"
	}
	s.render(c, http.StatusOK, "devices", "adm_devices_title", gin.H{
		"Rows": rows, "Machines": machines, "Broker": s.bridgeBrokerURL(c), "Prefix": prefix,
		"Kinds": []string{fablab.DeviceBridge, fablab.DeviceShellyGen1, fablab.DeviceShellyGen2, fablab.DeviceTasmota},
	})
}

// bridgeBrokerURL is the broker a bridge connects to, for the configuration
// shown at registration: the one the server was given, else the embedded
// broker's default port on the host the admin reached this server by.
func (s *Server) bridgeBrokerURL(c *gin.Context) string {
	if s.bridgeBroker != "" {
		return s.bridgeBroker
	}
	host := c.Request.Host
	if u, err := url.Parse(s.publicURL); err == nil && u.Host != "" {
		host = u.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return "tcp://" + net.JoinHostPort(strings.Trim(host, "[]"), "1883")
}

// settingsDay is one weekday's opening ranges on the settings page.
type settingsDay struct {
	Key    string // the JSON name: monday…
	Ranges []fablab.TimeRange
}

// settingsPage shows the lab's settings, opening hours, closures, default
// booking rules and tariff groups; they are saved through PATCH
// /api/v1/settings and PUT /api/v1/tariffs.
func (s *Server) settingsPage(c *gin.Context) {
	ctx := c.Request.Context()
	st, err := s.store.Settings(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	groups, err := s.store.TariffGroups(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	days := make([]settingsDay, 0, 7)
	for _, w := range []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday} {
		days = append(days, settingsDay{Key: weekdayKey(w), Ranges: st.OpeningHours.Day(w)})
	}
	s.render(c, http.StatusOK, "settings", "adm_settings_title", gin.H{
		"Settings": st, "Days": days, "Groups": groups, "VATPercent": vatPercent(st.VATRateBasisPoints),
	})
}

// weekdayKey is the JSON name of weekday w in fablab.OpeningHours.
func weekdayKey(w time.Weekday) string {
	return [...]string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}[w]
}

// vatPercent writes a VAT rate in basis points as a percent for a number
// control (2000 → "20", 550 → "5.5").
func vatPercent(bp int) string {
	s := euros(int64(bp))
	for len(s) > 0 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	return strings.TrimSuffix(s, ".")
}
