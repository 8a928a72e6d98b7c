package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/fablab"
)

type trainingRequest struct {
	Name           string `json:"name"`
	Description    string `json:"description"`
	ValidityMonths int    `json:"validity_months"`
}

func (s *Server) listTrainings(c *gin.Context) {
	p, err := s.store.Trainings(c.Request.Context(), 0, 10_000)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p.Items)
}

func (s *Server) createTraining(c *gin.Context) {
	var req trainingRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	t, err := s.store.CreateTraining(c.Request.Context(), fablab.Training{Name: req.Name, Description: req.Description, ValidityMonths: req.ValidityMonths})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("training created", "training", t.ID, "by", member(c).ID)
	c.JSON(http.StatusCreated, t)
}

type organisationRequest struct {
	Name           string `json:"name"`
	Group          string `json:"group"`
	BillingAddress string `json:"billing_address"`
	VATNumber      string `json:"vat_number"`
}

func (s *Server) listOrganisations(c *gin.Context) {
	p, err := s.store.Organisations(c.Request.Context(), 0, 100_000)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p.Items)
}

func (s *Server) createOrganisation(c *gin.Context) {
	var req organisationRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	if err := authorize(c, nil, req.adminTouches()); err != nil {
		s.fail(c, err)
		return
	}
	o, err := s.store.CreateOrganisation(c.Request.Context(), fablab.Organisation{Name: req.Name, Group: req.Group, BillingAddress: req.BillingAddress, VATNumber: req.VATNumber})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("organisation created", "organisation", o.ID, "by", member(c).ID)
	c.JSON(http.StatusCreated, o)
}

type tariffsDoc struct {
	Groups []fablab.TariffGroup `json:"groups"`
}

func (s *Server) getTariffs(c *gin.Context) {
	gs, err := s.store.TariffGroups(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, tariffsDoc{Groups: gs})
}

func (s *Server) putTariffs(c *gin.Context) {
	var req tariffsDoc
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	gs, err := s.store.PutTariffGroups(c.Request.Context(), req.Groups)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("tariff groups replaced", "groups", len(gs), "by", member(c).ID)
	c.JSON(http.StatusOK, tariffsDoc{Groups: gs})
}

// settingsRequest is the body of PATCH /settings: every field optional.
type settingsRequest struct {
	Name                *string                      `json:"name"`
	TimeZone            *string                      `json:"time_zone"`
	Currency            *string                      `json:"currency"`
	VATRateBasisPoints  *int                         `json:"vat_rate_bp"`
	VATMention          *string                      `json:"vat_mention"`
	OpeningHours        openingHoursPatch            `json:"opening_hours"`
	Closures            *[]fablab.Closure            `json:"closures"`
	InvoicePrefix       *string                      `json:"invoice_prefix"`
	BillingIncrementMin *int                         `json:"billing_increment_minutes"`
	DefaultRules        partial[fablab.BookingRules] `json:"default_rules"`
	Language            *string                      `json:"language"`
	LegalName           *string                      `json:"legal_name"`
	Address             *string                      `json:"address"`
	SIRET               *string                      `json:"siret"`
	VATNumber           *string                      `json:"vat_number"`
	PaymentTermsDays    *int                         `json:"payment_terms_days"`
	LatePenalty         *string                      `json:"late_penalty"`
	FreeUnderMinutes    *int                         `json:"free_under_minutes"`
}

func (s *Server) getSettings(c *gin.Context) {
	st, err := s.store.Settings(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

func (s *Server) patchSettings(c *gin.Context) {
	var req settingsRequest
	if err := decode(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	st, err := s.store.UpdateSettings(c.Request.Context(), func(st *fablab.Settings) error {
		set(&st.Name, req.Name)
		set(&st.TimeZone, req.TimeZone)
		set(&st.Currency, req.Currency)
		set(&st.VATRateBasisPoints, req.VATRateBasisPoints)
		set(&st.VATMention, req.VATMention)
		req.OpeningHours.applyTo(&st.OpeningHours)
		set(&st.Closures, req.Closures)
		set(&st.InvoicePrefix, req.InvoicePrefix)
		set(&st.BillingIncrementMin, req.BillingIncrementMin)
		req.DefaultRules.mergeInto(&st.DefaultRules)
		set(&st.Language, req.Language)
		set(&st.LegalName, req.LegalName)
		set(&st.Address, req.Address)
		set(&st.SIRET, req.SIRET)
		set(&st.VATNumber, req.VATNumber)
		set(&st.PaymentTermsDays, req.PaymentTermsDays)
		set(&st.LatePenalty, req.LatePenalty)
		set(&st.FreeUnderMinutes, req.FreeUnderMinutes)
		return nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.log.Info("settings updated", "by", member(c).ID)
	c.JSON(http.StatusOK, st)
}

// backup copies a consistent snapshot to a temporary file beside the data
// file first, then streams that file: the read transaction lasts as long as
// a local copy takes, not as long as the client takes to download.
func (s *Server) backup(c *gin.Context) {
	f, err := os.CreateTemp(filepath.Dir(s.store.Path()), ".backup-*")
	if err != nil {
		s.fail(c, fablab.Internal(err, "create backup file"))
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := s.store.WriteTo(f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		s.fail(c, fablab.Internal(err, "write backup snapshot"))
		return
	}
	name := fmt.Sprintf("fabgate-%s.db", s.now().UTC().Format("20060102-150405"))
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	c.DataFromReader(http.StatusOK, n, "application/octet-stream", f, nil)
	if int64(c.Writer.Size()) != n {
		s.log.Warn("backup cut short", "bytes", c.Writer.Size(), "of", n, "by", member(c).ID)
		return
	}
	s.lastBackup.Set(float64(s.now().Unix()))
	s.log.Info("backup streamed", "bytes", n, "by", member(c).ID)
}

// openingHoursPatch names the weekdays to change: each day given replaces
// that day's ranges whole; the days not given keep theirs.
type openingHoursPatch struct {
	days map[string][]fablab.TimeRange
}

// UnmarshalJSON accepts the weekday names of fablab.OpeningHours only.
func (p *openingHoursPatch) UnmarshalJSON(b []byte) error {
	var probe fablab.OpeningHours
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&probe); err != nil {
		return err
	}
	if err := checkFieldCase(b, reflect.TypeOf(probe)); err != nil {
		return err
	}
	return json.Unmarshal(b, &p.days)
}

func (p *openingHoursPatch) applyTo(o *fablab.OpeningHours) {
	for day, ranges := range p.days {
		for w := time.Sunday; w <= time.Saturday; w++ {
			if strings.EqualFold(day, w.String()) {
				o.Set(w, ranges)
			}
		}
	}
}
