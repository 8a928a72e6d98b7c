package httpapi

import (
	"context"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/fabgate/fabgate/internal/fablab"
)

// home shows the lab's public page to visitors and sends members to the machines.
func (s *Server) home(c *gin.Context) {
	if m, _ := s.pageMember(c); m != nil {
		c.Redirect(http.StatusSeeOther, "/machines")
		return
	}
	ms, err := s.store.Machines(c.Request.Context(), 0, 1000)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	s.render(c, http.StatusOK, "landing", "landing_title", ms.Items)
}

// loginPage shows the login form; the form posts to /api/v1/auth/login
// and then goes to next.
func (s *Server) loginPage(c *gin.Context) {
	s.render(c, http.StatusOK, "login", "login_title", gin.H{"Next": localPath(c.DefaultQuery("next", "/machines"))})
}

// resetPage lets the holder of a reset or invitation link choose a password.
func (s *Server) resetPage(c *gin.Context) {
	s.render(c, http.StatusOK, "reset", "reset_title", gin.H{"Token": c.Query("token")})
}

// forgotPage asks for an address to mail a reset link to.
func (s *Server) forgotPage(c *gin.Context) {
	s.render(c, http.StatusOK, "forgot", "forgot_title", nil)
}

// machineCard is one machine as the machines page shows it, its texts
// ready in the page's language (a page of 50 machines renders fast when the
// template only copies fields).
type machineCard struct {
	Machine fablab.Machine
	// PriceCents is the hourly price for the viewer's tariff group, -1 when
	// the machine has none for it.
	PriceCents int64
	// Missing are the trainings the viewer lacks for it.
	Missing []fablab.Training
	// Kind, State and Price are the machine's kind, state and price for
	// the viewer in words; MissingNames lists Missing.
	Kind, State, Price, MissingNames string
}

// machinesData is the machines page's data: the cards, rendered.
type machinesData struct {
	Cards template.HTML
	Count int
}

// key names everything the card shows, for the fragment cache: the texts
// are made from these (in the page's language, part of every key).
func (cd *machineCard) key() string {
	m := &cd.Machine
	return strings.Join([]string{m.ID.String(), m.DeviceID, m.Name, m.State, m.Kind, strconv.FormatInt(cd.PriceCents, 10), cd.MissingNames}, "\x00")
}

// machinesPage lists the machines with their price for the viewer and the
// trainings the viewer lacks; their live state comes from the event stream.
func (s *Server) machinesPage(c *gin.Context) {
	ctx := c.Request.Context()
	v, err := s.newView(c, "machines", "machines_title", nil)
	if err != nil {
		s.pageFail(c, err)
		return
	}
	cards, err := s.machineCards(ctx, member(c))
	if err != nil {
		s.pageFail(c, err)
		return
	}
	var list strings.Builder
	list.Grow(len(cards) * 512)
	for i := range cards {
		cd := &cards[i]
		for j, t := range cd.Missing {
			if j > 0 {
				cd.MissingNames += ", "
			}
			cd.MissingNames += t.Name
		}
		h, err := s.fragmentOf(v, "machine_card", cd.key(), func() any {
			cd.Kind, cd.State = v.Kind(cd.Machine.Kind), v.TOr("state_"+cd.Machine.State, cd.Machine.State)
			if cd.PriceCents >= 0 {
				cd.Price = v.T("machines_price", "Price", v.Money(cd.PriceCents))
			} else {
				cd.Price = v.T("machines_no_price")
			}
			return cd
		})
		if err != nil {
			s.pageFail(c, fablab.Internal(err, "render machine card"))
			return
		}
		list.WriteString(string(h))
	}
	// One action for the whole list: the cards are rendered (and escaped) rows.
	v.Data = machinesData{Cards: template.HTML(list.String()), Count: len(cards)}
	s.write(c, http.StatusOK, v)
}

func (s *Server) machineCards(ctx context.Context, me fablab.Member) ([]machineCard, error) {
	ms, err := s.store.Machines(ctx, 0, 1000)
	if err != nil {
		return nil, err
	}
	trainings, err := s.trainingsByID(ctx)
	if err != nil {
		return nil, err
	}
	quals, err := s.store.Qualifications(ctx, me.ID)
	if err != nil {
		return nil, err
	}
	group, err := s.memberGroup(ctx, me)
	if err != nil {
		return nil, err
	}
	now := s.now()
	cards := make([]machineCard, 0, len(ms.Items))
	for _, m := range ms.Items {
		if m.State == fablab.MachineRetired {
			continue
		}
		card := machineCard{Machine: m, PriceCents: -1}
		if p, ok := m.Prices[group]; ok {
			card.PriceCents = p
		}
		for _, id := range m.RequiredTrainings {
			// Each training on its own, through the one rule of who is qualified.
			one := fablab.Machine{RequiredTrainings: []fablab.ID{id}}
			if _, _, ok := fablab.Qualified(&one, me.ID, quals, now); !ok {
				if t, ok := trainings[id]; ok {
					card.Missing = append(card.Missing, t)
				}
			}
		}
		cards = append(cards, card)
	}
	sort.SliceStable(cards, func(i, j int) bool { return cards[i].Machine.Name < cards[j].Machine.Name })
	return cards, nil
}

// trainingsByID reads every training.
func (s *Server) trainingsByID(ctx context.Context) (map[fablab.ID]fablab.Training, error) {
	out := map[fablab.ID]fablab.Training{}
	var after fablab.ID
	for {
		p, err := s.store.Trainings(ctx, after, 500)
		if err != nil {
			return nil, err
		}
		for _, t := range p.Items {
			out[t.ID] = t
		}
		if p.Next == 0 {
			return out, nil
		}
		after = p.Next
	}
}

// memberGroup is the tariff group m pays: their own, else their organisation's.
func (s *Server) memberGroup(ctx context.Context, m fablab.Member) (string, error) {
	if m.Group != "" || m.OrganisationID == 0 {
		return m.Group, nil
	}
	o, err := s.store.Organisation(ctx, m.OrganisationID)
	if err != nil {
		return "", err
	}
	return o.Group, nil
}
