package httpapi

import (
	"testing"
	"time"

	"github.com/fabgate/fabgate/internal/fablab"
)

// seedUninvoiced records and bills a one-hour session of a on a priced
// machine in a month of its own, long past, and returns that month: its
// invoice run has a charge to invoice.
func (h *apiHarness) seedUninvoiced(t testing.TB, a *apiAccount) fablab.Period {
	t.Helper()
	ctx := t.Context()
	n := int(h.uniq())
	p := fablab.Period{Year: 2015 + n/12, Month: time.Month(n%12 + 1)}
	prices := map[string]int64{}
	for _, g := range fablab.DefaultTariffGroups() {
		prices[g.ID] = 1200
	}
	m := apiSeedMachine(t, h.store, fablab.Machine{Name: "Billed machine " + p.String(), Kind: fablab.KindCNC, Prices: prices})
	start := time.Date(p.Year, p.Month, 10, 10, 0, 0, 0, time.UTC)
	end := start.Add(time.Hour)
	if _, err := h.store.RecordSession(ctx, fablab.Session{MachineID: m.ID, MemberID: a.ID, DeviceID: "seed", Started: start, Until: end, Ended: &end,
		EndReason: fablab.EndTapOut, Confirmed: true, Billable: true}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.store.BillSessions(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	return p
}

// seedInvoice issues an invoice to maker a for a session of its own month.
func (h *apiHarness) seedInvoice(t testing.TB, a *apiAccount) fablab.Invoice {
	t.Helper()
	p := h.seedUninvoiced(t, a)
	invs, created, err := h.store.RunInvoices(t.Context(), p)
	if err != nil || !created {
		t.Fatalf("run %s: created %v, %v", p, created, err)
	}
	for _, inv := range invs {
		if inv.Payer == (fablab.Payer{Kind: fablab.PayerIsMember, ID: a.ID}) {
			return inv
		}
	}
	t.Fatalf("run %s issued no invoice to %s", p, a.Name)
	return fablab.Invoice{}
}
