package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/fabgate/fabgate/internal/fablab"
)

// The machine settings pages (staff): the list, a new machine, a machine's
// rules, prices and maintenance, and its printable label with a QR code.
// Staff change rules, state and maintenance; prices, fees and the device
// binding are the admins' (authorize() in the API decides, the page only
// shows those fields read-only to staff).

// machineAdminPages registers the machine settings pages on g, a group
// already restricted to staff and admins, and the outbox page.
func (s *Server) machineAdminPages(g *gin.RouterGroup) {
	g.GET("/staff/machines", s.cached(s.staffMachinesPage))
	g.GET("/staff/machines/new", s.machineNewPage)
	g.GET("/staff/machines/labels", s.machineLabelsPage)
	g.GET("/staff/machines/:id", s.machineEditPage)
	g.GET("/staff/machines/:id/label", s.machineLabelPage)
	g.GET("/staff/machines/:id/qr.png", s.machineQR)
	s.outboxPages(g)
}

// staffMachineRow is one machine of the staff list.
type staffMachineRow struct {
	Machine   fablab.Machine
	Trainings []fablab.Training
}

// staffMachinesPage lists every machine, retired ones included.
func (s *Server) staffMachinesPage(c *gin.Context) {
	ctx := c.Request.Context()
	ms, err := s.store.Machines(ctx, 0, 10_000)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	trainings, err := s.trainingsByID(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	rows := make([]staffMachineRow, 0, len(ms.Items))
	for _, m := range ms.Items {
		r := staffMachineRow{Machine: m}
		for _, id := range m.RequiredTrainings {
			if t, ok := trainings[id]; ok {
				r.Trainings = append(r.Trainings, t)
			}
		}
		rows = append(rows, r)
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Machine.Name < rows[j].Machine.Name })
	v, err := s.newView(c, "staff_machines", "adm_machines_title", nil)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	html, err := s.rowsHTML(v, "staff_machine_row", len(rows), func(i int) string {
		r := &rows[i]
		k := []string{r.Machine.ID.String(), r.Machine.Name, r.Machine.Kind, r.Machine.State, r.Machine.DeviceID}
		for _, t := range r.Trainings {
			k = append(k, t.Name)
		}
		return strings.Join(k, "\x00")
	}, func(i int) any { return &rows[i] })
	if err != nil {
		s.pageFail(c, fablab.Internal(err, "render machine rows"))
		return
	}
	v.Data = gin.H{"Rows": html, "Count": len(rows)}
	s.write(c, http.StatusOK, v)
}

// machineForm is the data of the new-machine and machine pages.
type machineForm struct {
	Machine   fablab.Machine
	New       bool
	Trainings []fablab.Training
	Required  map[fablab.ID]bool
	Devices   []fablab.Device // admins only: the binding is theirs
	Groups    []priceRow
	// Maintenance are the machine's blocks as the lab's wall-clock times,
	// for datetime-local controls.
	Maintenance []maintenanceRow
	States      []string
	Kinds       []string
	// Money fields in euros for the controls.
	MinimumCharge, NoShowFee string
}

// priceRow is a tariff group and the machine's hourly price for it ("" for none).
type priceRow struct {
	Group fablab.TariffGroup
	Price string
}

// maintenanceRow is a maintenance block in the lab's wall-clock time.
type maintenanceRow struct {
	Start, End, Reason string
}

// euros writes cents as a decimal amount for a number control ("12.50").
func euros(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// labMinute writes t as the lab's wall-clock time for a datetime-local control.
func labMinute(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02T15:04")
}

func (s *Server) machineFormData(ctx context.Context, me fablab.Member, m fablab.Machine) (*machineForm, error) {
	trainings, err := s.trainingsByID(ctx)
	if err != nil {
		return nil, err
	}
	groups, err := s.store.TariffGroups(ctx)
	if err != nil {
		return nil, err
	}
	st, err := s.store.Settings(ctx)
	if err != nil {
		return nil, err
	}
	f := &machineForm{Machine: m, Required: map[fablab.ID]bool{},
		States:        []string{fablab.MachineAvailable, fablab.MachineMaintenance, fablab.MachineRetired},
		Kinds:         []string{fablab.Kind3DPrinter, fablab.KindLaserCutter, fablab.KindCNC},
		MinimumCharge: euros(m.MinimumChargeCents), NoShowFee: euros(m.NoShowFeeCents)}
	for _, t := range trainings {
		f.Trainings = append(f.Trainings, t)
	}
	sort.Slice(f.Trainings, func(i, j int) bool { return f.Trainings[i].Name < f.Trainings[j].Name })
	for _, id := range m.RequiredTrainings {
		f.Required[id] = true
	}
	for _, g := range groups {
		r := priceRow{Group: g}
		if p, ok := m.Prices[g.ID]; ok {
			r.Price = euros(p)
		}
		f.Groups = append(f.Groups, r)
	}
	loc := st.Location()
	for _, b := range m.Maintenance {
		f.Maintenance = append(f.Maintenance, maintenanceRow{Start: labMinute(b.Start, loc), End: labMinute(b.End, loc), Reason: b.Reason})
	}
	if me.Role.AtLeast(fablab.RoleAdmin) {
		if f.Devices, err = s.store.Devices(ctx); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// machineNewPage shows the form creating a machine (with the lab's default rules).
func (s *Server) machineNewPage(c *gin.Context) {
	ctx := c.Request.Context()
	st, err := s.store.Settings(ctx)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	f, err := s.machineFormData(ctx, member(c), fablab.Machine{Rules: st.DefaultRules, State: fablab.MachineAvailable})
	if err != nil {
		s.pageFail(c, err)
		return
	}
	f.New = true
	s.render(c, http.StatusOK, "machine_edit", "adm_machine_new_title", f)
}

// pageMachine reads the machine the page's :id names.
func (s *Server) pageMachine(c *gin.Context) (fablab.Machine, bool) {
	id, err := pathID(c, "id")
	if err == nil {
		var m fablab.Machine
		if m, err = s.store.Machine(c.Request.Context(), id); err == nil {
			return m, true
		}
	}
	s.pageFail(c, err)
	return fablab.Machine{}, false
}

// machineEditPage shows a machine's settings.
func (s *Server) machineEditPage(c *gin.Context) {
	m, ok := s.pageMachine(c)
	if !ok {
		return
	}
	f, err := s.machineFormData(c.Request.Context(), member(c), m)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	s.render(c, http.StatusOK, "machine_edit", "adm_machine_edit_title", f)
}

// machineURL is the public address of a machine's calendar: what its label's
// QR code opens.
func (s *Server) machineURL(c *gin.Context, id fablab.ID) string {
	base := s.publicURL
	if base == "" {
		scheme := "http"
		if c.Request.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + c.Request.Host
	}
	return base + "/machines/" + id.String()
}

// machineLabel is one printable label.
type machineLabel struct {
	Machine fablab.Machine
	URL     string
}

// machineLabelPage shows one machine's printable label.
func (s *Server) machineLabelPage(c *gin.Context) {
	m, ok := s.pageMachine(c)
	if !ok {
		return
	}
	s.render(c, http.StatusOK, "label", "adm_label_title", gin.H{"Labels": []machineLabel{{Machine: m, URL: s.machineURL(c, m.ID)}}})
}

// machineLabelsPage shows the labels of every machine in service, to print at once.
func (s *Server) machineLabelsPage(c *gin.Context) {
	ms, err := s.store.Machines(c.Request.Context(), 0, 10_000)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	var labels []machineLabel
	for _, m := range ms.Items {
		if m.State != fablab.MachineRetired {
			labels = append(labels, machineLabel{Machine: m, URL: s.machineURL(c, m.ID)})
		}
	}
	sort.SliceStable(labels, func(i, j int) bool { return labels[i].Machine.Name < labels[j].Machine.Name })
	s.render(c, http.StatusOK, "label", "adm_labels_title", gin.H{"Labels": labels, "All": true})
}

// qrSize is the side of a label's QR code in pixels: sharp when printed
// about 5 cm wide.
const qrSize = 600

// machineQR draws the QR code of a machine's calendar address as a PNG.
func (s *Server) machineQR(c *gin.Context) {
	m, ok := s.pageMachine(c)
	if !ok {
		return
	}
	png, err := machineQRCode(s.machineURL(c, m.ID))
	if err != nil {
		s.pageFail(c, err)
		return
	}
	c.Header("Content-Length", strconv.Itoa(len(png)))
	c.Data(http.StatusOK, "image/png", png)
}

// machineQRCode encodes url with medium error correction (a label may get
// scratched) as a PNG of qrSize pixels.
func machineQRCode(url string) ([]byte, error) {
	png, err := qrcode.Encode(url, qrcode.Medium, qrSize)
	if err != nil {
		return nil, fablab.Internal(err, "draw QR code")
	}
	return png, nil
}
