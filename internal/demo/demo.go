// Package demo seeds the demo lab that `make run` starts: a French association
// FabLab in a technology park, with machines, prices, trainings, organisations,
// members with badges and qualifications, and a week of bookings, so that a
// newcomer can log in with one of the Accounts, book, and tap a badge.
//
// Everything is written through the store's public methods, so the demo data
// obeys the same validation as data entered through the API. Booking rules are
// bypassed (the demo writes history as well as future bookings) but the seeded
// bookings are built to satisfy them anyway: aligned to each machine's slots,
// inside opening hours, by members who hold the required trainings.
package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/fabgate/fabgate/internal/auth"
	"github.com/fabgate/fabgate/internal/bolt"
	"github.com/fabgate/fabgate/internal/booking"
	"github.com/fabgate/fabgate/internal/fablab"
)

// LabName is the name the demo gives the lab.
const LabName = "FabLab Technoparc (démo)"

// MakerBadgeUID is the badge of the demo maker (maker@fabgate.demo): tap it
// at a printer or the laser cutter to unlock it during their booking.
const MakerBadgeUID = "04A2B3C4D5E6F7"

// TourDevice is the device of the machine the README's tour taps the demo
// maker's badge on (the first Prusa). The demo books nothing on it, and
// walk-in taps are not bound to opening hours (DESIGN §3), so the maker's
// tap there is a walk-in granted at any hour of any day: the other printers
// are booked through the week, and a tap just before someone else's booking
// is denied booked_soon.
const TourDevice = "fdm-1"

// Account is a documented demo login.
type Account struct {
	Email    string
	Password string
	Role     fablab.Role
}

// Accounts are the demo logins the README documents. Every other demo member
// (firstname.lastname@… addresses) logs in with the maker's password,
// "demo-maker".
var Accounts = []Account{
	{Email: "admin@fabgate.demo", Password: "demo-admin", Role: fablab.RoleAdmin},
	{Email: "staff@fabgate.demo", Password: "demo-staff", Role: fablab.RoleStaff},
	{Email: "maker@fabgate.demo", Password: "demo-maker", Role: fablab.RoleMaker},
}

// sharedPassword is the password of demo members that are not in Accounts.
const sharedPassword = "demo-maker"

// Training names; machines and members refer to trainings by name.
const (
	tInduction = "Accueil et sécurité FabLab"
	tPrinting  = "Impression 3D"
	tResin     = "Impression résine"
	tLaser     = "Sécurité laser"
	tCNC       = "Fraiseuse CNC"
)

var trainings = []fablab.Training{
	{Name: tInduction, Description: "Visite de l'atelier, règles de vie, issues de secours et extincteurs. Obligatoire pour tout nouveau membre.", ValidityMonths: 0},
	{Name: tPrinting, Description: "Préparer un fichier (slicer), lancer et surveiller une impression FDM, changer de filament.", ValidityMonths: 24},
	{Name: tResin, Description: "Manipulation de la résine (gants, lunettes), lavage et post-cuisson des pièces.", ValidityMonths: 24},
	{Name: tLaser, Description: "Matériaux autorisés et interdits, focale, extraction des fumées, conduite à tenir en cas de départ de feu.", ValidityMonths: 12},
	{Name: tCNC, Description: "Bridage de la pièce, choix des fraises, origine machine, arrêt d'urgence.", ValidityMonths: 12},
}

// Organisation keys; members refer to their organisation by key.
const (
	orgSME    = "sme"
	orgSchool = "school"
	orgAssoc  = "association"
)

var organisations = []struct {
	key string
	org fablab.Organisation
}{
	{orgSME, fablab.Organisation{
		Name:           "Lumen Prototypes SAS",
		Group:          "sme",
		BillingAddress: "Lumen Prototypes SAS\nService comptabilité\n12 allée des Pionniers\nTechnoparc, Bâtiment B\n31670 Labège",
		VATNumber:      "FR00123456789",
	}},
	{orgSchool, fablab.Organisation{
		Name:           "École d'ingénieurs du Technoparc — Lab Prototypage",
		Group:          "academic",
		BillingAddress: "École d'ingénieurs du Technoparc\nAgence comptable — Lab Prototypage\n1 avenue de l'Innovation\n31670 Labège",
	}},
	{orgAssoc, fablab.Organisation{
		Name:           "Repair Café du Technoparc",
		Group:          "association",
		BillingAddress: "Repair Café du Technoparc\nMaison des associations\n5 place de la Halle\n31670 Labège",
	}},
}

// machineSpec is a demo machine and the bookings the demo week gives it.
type machineSpec struct {
	m         fablab.Machine
	trainings []string
	rules     func(*fablab.BookingRules)
	// slots are candidate bookings, as wall-clock start and length in
	// minutes; each day of the week keeps some of them (see Seed). The
	// tour's machine (TourDevice) has none.
	slots []slot
}

type slot struct {
	start fablab.ClockTime
	mins  int
}

func hm(h, m int) fablab.ClockTime { return fablab.ClockTime(h*60 + m) }

// prices builds a price table in cents per hour for student, academic,
// association, sme and non-member; staff use the machines for free.
func prices(student, academic, association, sme, nonMember int64) map[string]int64 {
	return map[string]int64{
		"student": student, "academic": academic, "association": association,
		"sme": sme, "non-member": nonMember, "staff": 0,
	}
}

func fdmRules(r *fablab.BookingRules) {
	r.SlotMinutes, r.MinMinutes, r.MaxMinutes = 30, 30, 480
	r.CancelCutoffMinutes = 60
	r.MaxWalkInMinutes = 120
}

var printerSlots = []slot{{hm(9, 0), 180}, {hm(12, 30), 120}, {hm(15, 0), 210}, {hm(19, 0), 120}}

var machines = []machineSpec{
	{
		m: fablab.Machine{
			Name: "Prusa MK4 #1", Kind: fablab.Kind3DPrinter, DeviceID: TourDevice,
			Description: "Imprimante FDM, plateau 25 × 21 × 22 cm, buse 0,4 mm. PLA et PETG fournis au poids. En accès libre : badgez et imprimez.",
			Prices:      prices(200, 300, 300, 600, 800), MinimumChargeCents: 100, NoShowFeeCents: 200,
			GraceMinutes: 10, IdlePowerW: 15,
		},
		trainings: []string{tPrinting}, rules: fdmRules, // no slots: the tour's walk-in machine
	},
	{
		m: fablab.Machine{
			Name: "Prusa MK4 #2", Kind: fablab.Kind3DPrinter, DeviceID: "fdm-2",
			Description: "Imprimante FDM, plateau 25 × 21 × 22 cm, buse 0,6 mm pour les grandes pièces.",
			Prices:      prices(200, 300, 300, 600, 800), MinimumChargeCents: 100, NoShowFeeCents: 200,
			GraceMinutes: 10, IdlePowerW: 15,
		},
		trainings: []string{tPrinting}, rules: fdmRules, slots: printerSlots,
	},
	{
		m: fablab.Machine{
			Name: "Bambu X1C", Kind: fablab.Kind3DPrinter, DeviceID: "fdm-3",
			Description: "Imprimante FDM fermée multi-matériaux (AMS, 4 bobines), 25 × 25 × 25 cm.",
			Prices:      prices(300, 400, 400, 800, 1000), MinimumChargeCents: 150, NoShowFeeCents: 300,
			GraceMinutes: 10, IdlePowerW: 20,
		},
		trainings: []string{tPrinting}, rules: fdmRules,
		slots: []slot{{hm(9, 30), 150}, {hm(13, 0), 180}, {hm(16, 30), 150}, {hm(19, 30), 90}},
	},
	{
		m: fablab.Machine{
			Name: "Trotec Speedy 360", Kind: fablab.KindLaserCutter, DeviceID: "laser-1",
			Description: "Découpeuse laser CO2 80 W, 81 × 51 cm. Bois, acrylique, carton, cuir — jamais de PVC.",
			Prices:      prices(1200, 2000, 1800, 3600, 4800), MinimumChargeCents: 500, NoShowFeeCents: 1500,
			GraceMinutes: 15, IdlePowerW: 200,
		},
		trainings: []string{tLaser},
		rules: func(r *fablab.BookingRules) {
			r.SlotMinutes, r.MinMinutes, r.MaxMinutes = 60, 60, 180
			r.MaxAheadDays = 21
			r.WeeklyQuotaMinutes = 360
			r.CancelCutoffMinutes = 240
			r.CheckInMinutes = 10
			r.MaxWalkInMinutes = 60
		},
		slots: []slot{{hm(9, 0), 120}, {hm(11, 0), 60}, {hm(14, 0), 120}, {hm(16, 0), 60}, {hm(18, 0), 120}},
	},
	{
		m: fablab.Machine{
			Name: "Fraiseuse CNC 3 axes", Kind: fablab.KindCNC, DeviceID: "cnc-1",
			Description: "Fraiseuse CNC 3 axes 120 × 80 cm (bois, MDF, aluminium léger), avec une Shaper Origin pour les découpes à main levée.",
			Prices:      prices(1000, 1800, 1500, 3000, 4000), MinimumChargeCents: 500, NoShowFeeCents: 1500,
			GraceMinutes: 10, IdlePowerW: 150,
		},
		trainings: []string{tCNC},
		rules: func(r *fablab.BookingRules) {
			r.SlotMinutes, r.MinMinutes, r.MaxMinutes = 60, 60, 240
			r.WeeklyQuotaMinutes = 480
			r.CancelCutoffMinutes = 24 * 60
			r.NoShowReleaseMinutes = 20
			r.WalkIn, r.MaxWalkInMinutes = false, 0
		},
		slots: []slot{{hm(10, 0), 180}, {hm(14, 0), 180}, {hm(18, 0), 120}},
	},
	{
		m: fablab.Machine{
			Name: "Roland GS2-24", Kind: "vinyl-cutter", DeviceID: "vinyl-1",
			Description: "Plotter de découpe vinyle 60 cm : adhésif, flex textile, pochoirs. Pas de formation requise.",
			Prices:      prices(100, 150, 150, 300, 400), MinimumChargeCents: 50,
			GraceMinutes: 5, IdlePowerW: 10,
		},
		rules: func(r *fablab.BookingRules) {
			r.MaxMinutes = 120
			r.CancelCutoffMinutes = 60
			r.MaxWalkInMinutes = 60
		},
		slots: []slot{{hm(10, 0), 60}, {hm(13, 30), 60}, {hm(17, 0), 90}},
	},
	{
		m: fablab.Machine{
			Name: "Formlabs Form 3+", Kind: "resin-printer", DeviceID: "resin-1", State: fablab.MachineMaintenance,
			Description: "Imprimante résine SLA, 14,5 × 14,5 × 18,5 cm. En maintenance : bac à résine à remplacer.",
			Prices:      prices(400, 600, 600, 1200, 1500), MinimumChargeCents: 300, NoShowFeeCents: 300,
			GraceMinutes: 10, IdlePowerW: 30,
		},
		trainings: []string{tPrinting, tResin}, rules: fdmRules,
	},
}

// qual is a qualification to grant: valid for the training's full validity,
// or for only monthsLeft months and daysLeft days from now when either is set
// (a training passed a while ago, or about to lapse).
type qual struct {
	training             string
	monthsLeft, daysLeft int
}

func q(training string) qual                   { return qual{training: training} }
func qMonths(training string, months int) qual { return qual{training: training, monthsLeft: months} }
func qDays(training string, days int) qual     { return qual{training: training, daysLeft: days} }

// everything is every training, for staff and trainers.
var everything = []qual{q(tInduction), q(tPrinting), q(tResin), q(tLaser), q(tCNC)}

// memberSpec is a demo member.
type memberSpec struct {
	email, name string
	role        fablab.Role
	group       string // own tariff group; "" takes the organisation's
	org         string // organisation key, "" for none
	payer       string // "" is the default: the organisation when there is one
	status      string
	// membershipDays: 0 = no end date; > 0 = valid until that many days from
	// now; < 0 = expired that many days ago.
	membershipDays int
	language       string
	prepaid        int64
	password       string // "" = sharedPassword
	badge          string // 7-byte UID, "" = none yet
	quals          []qual
}

var members = []memberSpec{
	{email: "admin@fabgate.demo", name: "Camille Laurent", role: fablab.RoleAdmin, group: "staff",
		password: "demo-admin", badge: "04A1B2C3D4E5F6", quals: everything},
	{email: "staff@fabgate.demo", name: "Julien Moreau", role: fablab.RoleStaff, group: "staff",
		password: "demo-staff", badge: "04C1D2E3F4A5B6", quals: everything},
	{email: "maker@fabgate.demo", name: "Léa Dubois", role: fablab.RoleMaker, group: "student",
		membershipDays: 300, password: "demo-maker", badge: MakerBadgeUID,
		quals: []qual{q(tInduction), q(tPrinting), qMonths(tLaser, 9)}},

	// Lumen Prototypes (SME): the company pays, except for its freelance consultant.
	{email: "thomas.bernard@lumen-proto.example", name: "Thomas Bernard", org: orgSME, membershipDays: 200,
		badge: "04112233445566", quals: []qual{q(tInduction), q(tPrinting), q(tLaser), q(tCNC)}},
	{email: "sophie.petit@lumen-proto.example", name: "Sophie Petit", org: orgSME, membershipDays: 200,
		badge: "04223344556677", quals: []qual{q(tInduction), qMonths(tPrinting, 14), qDays(tLaser, 3)}},
	{email: "nicolas.roux@lumen-proto.example", name: "Nicolas Roux", org: orgSME, payer: fablab.PayerSelf,
		membershipDays: 200, badge: "04334455667788", quals: []qual{q(tInduction), q(tCNC)}},

	// École d'ingénieurs (academic): staff paid by the school, students pay for themselves.
	{email: "chloe.girard@ei-technoparc.example", name: "Chloé Girard", org: orgSchool, membershipDays: 250,
		badge: "04445566778899", quals: []qual{q(tInduction), q(tPrinting), q(tResin), q(tLaser)}},
	{email: "manon.fontaine@ei-technoparc.example", name: "Manon Fontaine", org: orgSchool, membershipDays: 250,
		badge: "045566778899AA", quals: []qual{q(tInduction), q(tCNC), qMonths(tLaser, 1)}},
	{email: "hugo.lefevre@ei-technoparc.example", name: "Hugo Lefèvre", group: "student", org: orgSchool,
		payer: fablab.PayerSelf, membershipDays: 120, badge: "0466778899AABB", quals: []qual{q(tInduction), q(tPrinting)}},
	{email: "yanis.benali@ei-technoparc.example", name: "Yanis Benali", group: "student", org: orgSchool,
		payer: fablab.PayerSelf, membershipDays: 120, quals: []qual{q(tInduction), qDays(tPrinting, 2)}},

	// Repair Café (association): the association pays for its volunteers.
	{email: "lucas.mercier@repaircafe.example", name: "Lucas Mercier", org: orgAssoc, membershipDays: 180,
		badge: "0477889900AABB", quals: []qual{q(tInduction), q(tPrinting), q(tLaser)}},
	{email: "ines.garnier@repaircafe.example", name: "Inès Garnier", org: orgAssoc, membershipDays: 180,
		badge: "04889900AABBCC", quals: []qual{q(tInduction), q(tPrinting)}},

	// Individual makers.
	{email: "emma.rousseau@etu.example", name: "Emma Rousseau", group: "student", membershipDays: 90, prepaid: 600,
		badge: "0499AABBCCDDEE", quals: []qual{q(tInduction), q(tPrinting), q(tLaser), q(tCNC)}},
	{email: "maxime.blanc@etu.example", name: "Maxime Blanc", group: "student", membershipDays: 60,
		badge: "04AABBCCDDEEFF", quals: []qual{q(tInduction), qMonths(tPrinting, 5)}},
	{email: "sarah.chevalier@labo.example", name: "Sarah Chevalier", group: "academic", membershipDays: 330,
		language: "en", badge: "04BBCCDDEEFF00", quals: []qual{q(tInduction), q(tLaser), q(tCNC)}},
	{email: "julie.bonnet@atelier-bonnet.example", name: "Julie Bonnet", group: "sme", membershipDays: 150, prepaid: 300,
		badge: "04CCDDEEFF0011", quals: []qual{q(tInduction), q(tPrinting), qMonths(tLaser, 4)}},
	{email: "antoine.faure@mail.example", name: "Antoine Faure", group: "non-member",
		badge: "04DDEEFF001122", quals: []qual{q(tInduction), q(tPrinting)}},
	{email: "mathis.perrin@mail.example", name: "Mathis Perrin", group: "staff", membershipDays: 365,
		badge: "04EEFF00112233", quals: everything},
	// Cannot use the lab: suspended, and membership lapsed.
	{email: "louis.fournier@etu.example", name: "Louis Fournier", group: "student", status: fablab.StatusSuspended,
		membershipDays: 100, badge: "04FF0011223344", quals: []qual{q(tInduction), q(tPrinting), q(tLaser)}},
	{email: "elodie.marchand@mail.example", name: "Élodie Marchand", group: "association", membershipDays: -20,
		badge: "04102132435465", quals: []qual{q(tInduction), q(tPrinting)}},
}

// seeder carries what the seeding steps share.
type seeder struct {
	ctx context.Context
	s   *bolt.Store
	now time.Time
	st  fablab.Settings
	pw  auth.Params

	hashes    map[string]string // password → hash, so each is hashed once
	trainings map[string]fablab.Training
	orgs      map[string]fablab.ID
	machines  []fablab.Machine // in the order of the machines table
	members   []fablab.Member  // in the order of the members table
	quals     map[fablab.ID]map[fablab.ID]fablab.Qualification
}

// Seed fills an empty lab with the demo data and reports whether it did; a
// lab that already has members is left as it is, so re-running keeps existing
// data. now places the demo week of bookings (the ISO week containing now, in
// the lab's time zone) and the membership and qualification end dates; pw are
// the argon2id parameters of the demo passwords.
//
// Seeding is not one transaction: an error part-way leaves what was written
// so far.
func Seed(ctx context.Context, s *bolt.Store, now time.Time, pw auth.Params) (bool, error) {
	n, err := s.CountMembers(ctx)
	if err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	sd := &seeder{
		ctx: ctx, s: s, now: now, pw: pw,
		hashes:    map[string]string{},
		trainings: map[string]fablab.Training{},
		orgs:      map[string]fablab.ID{},
		quals:     map[fablab.ID]map[fablab.ID]fablab.Qualification{},
	}
	for _, step := range []struct {
		what string
		fn   func() error
	}{
		{"settings", sd.settings},
		{"trainings", sd.seedTrainings},
		{"organisations", sd.seedOrganisations},
		{"machines", sd.seedMachines},
		{"members", sd.seedMembers},
		{"history", sd.seedHistory},
		{"bookings", sd.seedBookings},
	} {
		if err := step.fn(); err != nil {
			return false, fmt.Errorf("demo %s: %w", step.what, err)
		}
	}
	return true, nil
}

func (sd *seeder) settings() error {
	st, err := sd.s.UpdateSettings(sd.ctx, func(st *fablab.Settings) error {
		st.Name = LabName
		return nil
	})
	sd.st = st
	return err
}

func (sd *seeder) seedTrainings() error {
	for _, t := range trainings {
		saved, err := sd.s.CreateTraining(sd.ctx, t)
		if err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
		sd.trainings[saved.Name] = saved
	}
	return nil
}

func (sd *seeder) seedOrganisations() error {
	for _, o := range organisations {
		org, err := sd.s.CreateOrganisation(sd.ctx, o.org)
		if err != nil {
			return fmt.Errorf("%s: %w", o.org.Name, err)
		}
		sd.orgs[o.key] = org.ID
	}
	return nil
}

func (sd *seeder) trainingID(name string) (fablab.ID, error) {
	t, ok := sd.trainings[name]
	if !ok {
		return 0, fmt.Errorf("unknown demo training %q", name)
	}
	return t.ID, nil
}

func (sd *seeder) seedMachines() error {
	for _, spec := range machines {
		m := spec.m
		m.Prices = clonePrices(m.Prices)
		m.Rules = sd.st.DefaultRules
		if spec.rules != nil {
			spec.rules(&m.Rules)
		}
		for _, name := range spec.trainings {
			id, err := sd.trainingID(name)
			if err != nil {
				return err
			}
			m.RequiredTrainings = append(m.RequiredTrainings, id)
		}
		m, err := sd.s.CreateMachine(sd.ctx, m)
		if err != nil {
			return fmt.Errorf("%s: %w", spec.m.Name, err)
		}
		sd.machines = append(sd.machines, m)
	}
	return nil
}

func clonePrices(p map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(p))
	for g, c := range p {
		out[g] = c
	}
	return out
}

// hash returns the hash of password, computing it only the first time:
// argon2id is deliberately slow.
func (sd *seeder) hash(password string) (string, error) {
	if h, ok := sd.hashes[password]; ok {
		return h, nil
	}
	h, err := auth.HashPassword(sd.pw, password)
	if err != nil {
		return "", err
	}
	sd.hashes[password] = h
	return h, nil
}

// localDay returns the first instant of the lab day days after now's.
func (sd *seeder) localDay(days int) time.Time {
	loc := sd.st.Location()
	return fablab.DateOf(sd.now.In(loc)).AddDays(days).In(loc).UTC()
}

func (sd *seeder) seedMembers() error {
	// Qualifications are granted by the staff account, created second.
	var grantor fablab.ID
	for i, spec := range members {
		password := spec.password
		if password == "" {
			password = sharedPassword
		}
		hash, err := sd.hash(password)
		if err != nil {
			return err
		}
		m := fablab.Member{
			Email: spec.email, Name: spec.name, Role: spec.role, Group: spec.group,
			OrganisationID: sd.orgs[spec.org], Payer: spec.payer, Status: spec.status,
			PrepaidMinutes: spec.prepaid, Language: spec.language, PasswordHash: hash,
		}
		if spec.org != "" && m.OrganisationID == 0 {
			return fmt.Errorf("%s: unknown demo organisation %q", spec.email, spec.org)
		}
		if spec.membershipDays != 0 {
			until := sd.localDay(spec.membershipDays)
			m.MembershipUntil = &until
		}
		if m.Role == "" {
			m.Role = fablab.RoleMaker
		}
		m, err = sd.s.CreateMember(sd.ctx, m)
		if err != nil {
			return fmt.Errorf("%s: %w", spec.email, err)
		}
		sd.members = append(sd.members, m)
		if i == 1 {
			grantor = m.ID
		}
		if err := sd.qualify(m, spec.quals, grantor); err != nil {
			return fmt.Errorf("%s: %w", spec.email, err)
		}
		if spec.badge != "" {
			uid, err := fablab.NormalizeUID(spec.badge)
			if err != nil {
				return fmt.Errorf("%s: %w", spec.email, err)
			}
			b := fablab.Badge{Hash: auth.BadgeHash(sd.s.BadgeSecret(), uid), MemberID: m.ID, Label: "Carte membre"}
			if _, err := sd.s.AddBadge(sd.ctx, b); err != nil {
				return fmt.Errorf("%s: badge: %w", spec.email, err)
			}
		}
	}
	return nil
}

func (sd *seeder) qualify(m fablab.Member, quals []qual, grantor fablab.ID) error {
	if grantor == 0 {
		grantor = m.ID // the admin, created first, qualifies themself
	}
	sd.quals[m.ID] = map[fablab.ID]fablab.Qualification{}
	for _, ql := range quals {
		t, ok := sd.trainings[ql.training]
		if !ok {
			return fmt.Errorf("unknown demo training %q", ql.training)
		}
		q := fablab.Qualification{MemberID: m.ID, TrainingID: t.ID, GrantedBy: grantor}
		if t.ValidityMonths > 0 {
			months, days := t.ValidityMonths, 0
			if ql.monthsLeft != 0 || ql.daysLeft != 0 {
				months, days = ql.monthsLeft, ql.daysLeft
			}
			exp := sd.now.AddDate(0, months, days).UTC()
			q.ExpiresAt = &exp
		}
		q, err := sd.s.GrantQualification(sd.ctx, q)
		if err != nil {
			return fmt.Errorf("qualification %s: %w", t.Name, err)
		}
		sd.quals[m.ID][t.ID] = q
	}
	return nil
}

// seedBookings books the week containing now. Each available machine gets,
// each open day, a share of its candidate slots that changes from day to day
// and machine to machine (about two in five), so the calendar looks lived in
// and still has room for the visitor's own bookings. Each booking goes to the
// next maker, in turn, who may use the machine then: active, holding its
// trainings until the booking ends, and within its weekly quota.
func (sd *seeder) seedBookings() error {
	week := booking.WeekOf(&sd.st, sd.now)
	loc := sd.st.Location()
	open := booking.OpenIntervals(&sd.st, week.Start, week.End)
	monday := fablab.DateOf(week.Start.In(loc))

	var makers []fablab.Member
	for _, m := range sd.members {
		if m.Role == fablab.RoleMaker {
			makers = append(makers, m)
		}
	}
	weekMinutes := map[[2]fablab.ID]int{} // member, machine → minutes booked
	for mi, spec := range machines {
		m := sd.machines[mi]
		if m.State != fablab.MachineAvailable {
			continue
		}
		next := (2 * mi) % len(makers)
		for day := range 7 {
			d := monday.AddDays(day)
			for si, sl := range spec.slots {
				if (3*day+mi+si)%5 >= 2 {
					continue
				}
				iv := fablab.Interval{Start: d.At(sl.start, loc)}
				iv.End = iv.Start.Add(time.Duration(sl.mins) * time.Minute)
				if !fitsRules(m.Rules, sl) || !insideOne(open, iv) {
					continue
				}
				for k := range makers {
					who := makers[(next+k)%len(makers)]
					key := [2]fablab.ID{who.ID, m.ID}
					if !sd.mayUse(who, m, iv) || m.Rules.WeeklyQuotaMinutes > 0 && weekMinutes[key]+sl.mins > m.Rules.WeeklyQuotaMinutes {
						continue
					}
					_, err := sd.s.CreateBooking(sd.ctx, fablab.Booking{
						MachineID: m.ID, MemberID: who.ID, Start: iv.Start, End: iv.End, CreatedBy: who.ID,
					}, func(bolt.BookingContext) error { return nil })
					if err != nil {
						return fmt.Errorf("%s %s: %w", m.Name, iv.Start.In(loc).Format("2006-01-02 15:04"), err)
					}
					weekMinutes[key] += sl.mins
					next = (next + k + 1) % len(makers)
					break
				}
			}
		}
	}
	return nil
}

// fitsRules reports whether sl is a booking the rules allow: aligned to the
// slot and between the minimum and maximum length.
func fitsRules(r fablab.BookingRules, sl slot) bool {
	return int(sl.start)%r.SlotMinutes == 0 && sl.mins%r.SlotMinutes == 0 &&
		sl.mins >= r.MinMinutes && sl.mins <= r.MaxMinutes
}

// insideOne reports whether iv lies entirely inside one of the open intervals.
func insideOne(open []fablab.Interval, iv fablab.Interval) bool {
	for _, o := range open {
		if !iv.Start.Before(o.Start) && !o.End.Before(iv.End) {
			return true
		}
	}
	return false
}

// mayUse reports whether m may use machine during iv: active throughout,
// with every required training valid when it ends.
func (sd *seeder) mayUse(m fablab.Member, machine fablab.Machine, iv fablab.Interval) bool {
	if !m.ActiveAt(iv.Start) || !m.ActiveAt(iv.End.Add(-time.Nanosecond)) {
		return false
	}
	for _, t := range machine.RequiredTrainings {
		q, ok := sd.quals[m.ID][t]
		if !ok || !q.ValidAt(iv.End) {
			return false
		}
	}
	return true
}
