"""Demo data for enrollment: a summer peak program and its participants.

The program is modelled on a utility commercial demand-response program of the kind run in
New York City (weekday afternoon events of up to four hours called a day ahead, a monthly
reservation payment per committed kW, an energy payment per kWh reduced, and enablement
incentives paying 50% of the cost of load-control equipment). Everything is created
through the services, so the demo has the same audit trail as real use; every object is
found by a natural key first, so loading twice creates nothing new.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.utils import timezone

from dr_platform.models import Membership
from enrollment import services
from enrollment.constants import WEEKEND_BASELINE_VARIANTS
from enrollment.models import (
    Audit,
    AuditFinding,
    BackupGenerator,
    Contact,
    ContactMethod,
    EnablementMeasure,
    Enrollment,
    Meter,
    NominationWindow,
    Organization,
    Program,
    Site,
)

PROGRAM_NAME = "Summer Peak Rewards"
ZONES = {"ZONE-J": ["Hell Gate", "Vernon", "Farragut"], "ZONE-K": ["Ruland Road", "Pilgrim"]}
BUSINESS_WORDS = (
    "Atlas Bearings",
    "Bayview Plastics",
    "Beacon Hospital",
    "Bridgeport Foods",
    "Canal Street Lofts",
    "Cedar Data Centers",
    "Citywide Laundry",
    "Clearwater Brewing",
    "Crescent Hotels",
    "Delta Printing",
    "Eastside Ice Rink",
    "Empire Bakeries",
    "Ferry Terminal Retail",
    "Foundry Metalworks",
    "Gotham Cold Chain",
    "Granite Office Towers",
    "Greenpoint Glass",
    "Hudson Pharmaceuticals",
    "Island Water Works",
    "Kings County Schools",
    "Lafayette Department Store",
    "Liberty Textiles",
    "Meridian Labs",
    "Midtown Parking",
    "Northern Boulevard Mall",
    "Oceanside Aquarium",
    "Pier 9 Seafood",
    "Queens Plaza Offices",
    "Red Hook Warehousing",
    "Riverside University",
    "Sunset Park Studios",
    "Tribeca Cinemas",
    "Union Square Grocers",
    "Vanderbilt Arena",
    "Waterfront Cold Storage",
    "Williamsburg Fitness",
    "Yorkville Senior Living",
    "Zenith Semiconductors",
)
STREETS = ("Industrial Way", "Harbor Road", "Main Street", "Atlantic Avenue", "Queens Boulevard")
END_USES = ["hvac", "lighting", "process", "generator", "storage", "ev", "other"]


def _staff(username: str):
    return get_user_model().objects.get(username=username)


def _program() -> Program:
    today = timezone.localdate()
    year = today.year
    program, created = Program.objects.get_or_create(
        name=PROGRAM_NAME,
        defaults={
            "description": (
                "Weekday afternoon curtailment events in summer, called by 3 pm the day before. "
                "Participants earn a monthly reservation payment per committed kW and an energy "
                "payment per kWh reduced; the program pays half the cost of load-control "
                "equipment."
            ),
            "time_zone": "America/New_York",
            "season_start": dt.date(year, 5, 1),
            "season_end": dt.date(year, 9, 30),
            "allowed_weekdays": [0, 1, 2, 3, 4],
            "event_window_start": dt.time(11, 0),
            "event_window_end": dt.time(21, 0),
            "min_notice_minutes": 21 * 60,
            "emergency_overrides_notice": True,
            "min_event_minutes": 60,
            "max_event_minutes": 240,
            "max_events_per_season": 15,
            "max_hours_per_season": 60,
            "max_events_per_month": 6,
            "opt_outs_per_season": 2,
            "opt_out_cutoff_minutes": 120,
            "ack_deadline_minutes": 30,
            "baseline_preset": "nyiso_high_5_of_10",
            "weekend_baseline_preset": "nyiso_weekend_high_2_of_3",
            "capacity_rate_per_kw_month": Decimal("18.00"),
            "energy_rate_per_kwh": Decimal("1.00000"),
            "enablement_cost_share": Decimal("0.5"),
            "enablement_cap": Decimal("100000.00"),
            "audit_required": True,
            "min_committed_kw": Decimal("50"),
            "commitment_months": 36,
            "terms_text": (
                "1. The participant reduces load at the enrolled sites during events called "
                "under this program.\n2. Payments follow the program's published rates; "
                "performance is measured against the program's customer baseline.\n3. "
                "Enablement incentives are repaid pro rata if a site leaves before the end of "
                "its commitment period."
            ),
            "terms_version": f"{year}.1",
        },
    )
    if created:
        program.full_clean()
    now = timezone.now()
    NominationWindow.objects.get_or_create(
        program=program,
        opens_at=now.replace(day=1, hour=5, minute=0, second=0, microsecond=0),
        defaults={
            "closes_at": now.replace(hour=5, minute=0, second=0, microsecond=0)
            + dt.timedelta(days=14)
        },
    )
    return program


def give_weekend_baseline(program: Program) -> None:
    """Give a demo ``program`` without a weekend and holiday method the variant of its
    weekday method, when the presets define one (a program of a demo loaded before weekend
    methods existed); a program that has one, or whose method has no variant, is left as
    it is."""
    variant = WEEKEND_BASELINE_VARIANTS.get(program.baseline_preset)
    if program.weekend_baseline_preset or variant is None:
        return
    program.weekend_baseline_preset = variant
    program.full_clean()
    program.save(update_fields=["weekend_baseline_preset"])


def _organizations(manager) -> list[Organization]:
    organizations = list(
        Organization.objects.filter(billing_account_number__in=["BA-100001", "BA-100002"])
    )
    tiers = ["A"] * 6 + ["B"] * 14 + ["C"] * 18
    for index, (name, tier) in enumerate(zip(BUSINESS_WORDS, tiers, strict=True)):
        organization, _ = Organization.objects.get_or_create(
            billing_account_number=f"BA-2{index:05d}",
            defaults={
                "legal_name": f"{name} {'LLC' if index % 3 else 'Inc.'}",
                "tier": tier,
                "account_manager": manager if tier == "A" else None,
            },
        )
        organizations.append(organization)
    return organizations


def _sites(organization: Organization, count: int, rng: random.Random) -> list[Site]:
    sites = []
    for number in range(1, count + 1):
        zone = rng.choice(sorted(ZONES))
        substation = rng.choice(ZONES[zone])
        peak = Decimal(rng.randrange(300, 4000, 10))
        site, _ = Site.objects.get_or_create(
            service_account_number=f"SA-{organization.billing_account_number[3:]}-{number:02d}",
            defaults={
                "organization": organization,
                "name": f"{organization.legal_name.split(' ')[0]} site {number}",
                "street": f"{rng.randrange(10, 990)} {rng.choice(STREETS)}",
                "city": "New York" if zone == "ZONE-J" else "Hicksville",
                "state": "NY",
                "postal_code": f"1{rng.randrange(1000, 1999):04d}",
                "zone": zone,
                "substation": substation,
                "feeder": f"{substation[:3].upper()}-{rng.randrange(1, 40):02d}",
                "peak_demand_kw": peak,
            },
        )
        Meter.objects.get_or_create(
            meter_id=f"MTR-{site.service_account_number[3:]}",
            defaults={"site": site, "interval_minutes": 15},
        )
        sites.append(site)
    return sites


def _audit(site: Site, auditor, rng: random.Random, complete: bool) -> Audit:
    audit = site.audits.first()
    if audit is None:
        audit = services.audit_schedule(
            site=site,
            auditor=auditor,
            scheduled_for=timezone.now() - dt.timedelta(days=rng.randrange(200, 400)),
        )
    if complete and audit.status == Audit.Status.SCHEDULED:
        peak = site.peak_demand_kw
        for end_use in rng.sample(END_USES[:4], 2):
            finding = AuditFinding.objects.create(
                audit=audit,
                end_use=end_use,
                description=f"{end_use.upper()} load that can be shed on command",
                curtailable_kw=(peak * Decimal(rng.randrange(8, 20)) / 100).quantize(Decimal("1")),
                response_time_minutes=rng.choice([10, 15, 30, 60]),
                needs_enablement=end_use in ("hvac", "generator"),
            )
            if end_use == "generator":
                BackupGenerator.objects.create(
                    audit=audit,
                    kw=finding.curtailable_kw,
                    fuel=rng.choice(["diesel", "natural_gas"]),
                    permitted_run_hours_per_year=rng.choice([100, 200, 500]),
                    remote_start=rng.random() < 0.6,
                )
            if finding.needs_enablement:
                EnablementMeasure.objects.create(
                    audit=audit,
                    finding=finding,
                    kind="generation" if end_use == "generator" else "load_control",
                    description=(
                        "Automatic transfer switch and remote start"
                        if end_use == "generator"
                        else "Remote HVAC setpoint control through the building system"
                    ),
                    estimated_cost=Decimal(rng.randrange(15_000, 160_000, 500)),
                )
        services.audit_complete(
            audit=audit, by=auditor, summary="Walk-through with facility staff."
        )
    return audit


def _contacts(organization: Organization, rng: random.Random, index: int) -> None:
    if organization.contacts.exists():
        return
    now = timezone.now()
    for number, (title, kinds) in enumerate(
        [
            ("Facility manager", ["sms", "email", "voice"]),
            ("Chief engineer", ["pager_wctp", "sms"]),
        ],
        start=1,
    ):
        contact = Contact.objects.create(
            organization=organization, name=f"{title.split()[0]} {index}-{number}", title=title
        )
        for order, kind in enumerate(kinds, start=1):
            address = {
                "sms": f"+1212555{index:02d}{number}{order}",
                "voice": f"+1718555{index:02d}{number}{order}",
                "email": f"ops{number}@{organization.billing_account_number.lower()}.example.com",
                "pager_wctp": f"{7000000 + index * 10 + number}",
            }[kind]
            ContactMethod.objects.create(
                contact=contact,
                kind=kind,
                address=address,
                escalation_order=order,
                wctp_endpoint="https://wctp.carrier.example/wctp" if kind == "pager_wctp" else "",
                verified_at=now,
            )


def load_enrollment_demo() -> None:
    """About 40 organizations, 60 sites with meters and contacts, audits, projects, enrollments."""
    loaded = Program.objects.filter(name=PROGRAM_NAME).first()
    if loaded is not None:
        # Loaded before: the rest hangs off the program and is not reloaded.
        give_weekend_baseline(loaded)
        return
    rng = random.Random(20260601)  # the same demo every time
    manager, auditor = _staff("manager"), _staff("auditor")
    program = _program()
    organizations = _organizations(manager)
    statuses = (
        ["active"] * 38 + ["applied"] * 4 + ["under_review"] * 3 + ["suspended"] * 2
        + ["withdrawn"] * 2 + ["rejected"] * 1 + [None] * 10
    )  # fmt: skip
    project_states = ["proposed", "approved", "installed", "verified", "paid"]
    site_index = 0
    for index, organization in enumerate(organizations):
        count = 3 if organization.tier == "A" else (2 if index % 4 == 0 else 1)
        admin = _participant_admin(organization, index)
        _contacts(organization, rng, index)
        for site in _sites(organization, count, rng):
            status = statuses[site_index % len(statuses)]
            site_index += 1
            audit = _audit(site, auditor, rng, complete=status is not None)
            if status is None:
                continue
            site.refresh_from_db()
            committed = (site.audited_curtailable_kw * Decimal("0.8")).quantize(Decimal("1"))
            [enrollment] = services.enrollment_apply(
                user=admin,
                organization=organization,
                program=program,
                commitments={site: max(committed, program.min_committed_kw)},
                accepted_terms_version=program.terms_version,
                ip_address="198.51.100.20",
                user_agent="Demo loader",
            )
            _decide(enrollment, status, manager, admin)
            measures = list(audit.measures.all())
            if measures and status == "active" and site_index % 3 == 0:
                project = services.enablement_project_create(
                    audit=audit,
                    program=program,
                    measures=measures,
                    description=measures[0].description,
                    by=manager,
                )
                target = project_states[site_index % len(project_states)]
                for step in project_states[1 : project_states.index(target) + 1]:
                    services.enablement_project_advance(project=project, to_status=step, by=manager)
    # A few audits still to do, so the auditor has a queue.
    for site in Site.objects.filter(audits__isnull=True)[:3]:
        _audit(site, auditor, rng, complete=False)


def _participant_admin(organization: Organization, index: int):
    membership = (
        Membership.objects.filter(organization=organization, role=Membership.Role.ADMIN)
        .select_related("user")
        .first()
    )
    if membership:
        return membership.user
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        username=f"participant{index:02d}",
        defaults={"email": f"admin@{organization.billing_account_number.lower()}.example.com"},
    )
    user.set_unusable_password()
    user.save(update_fields=["password"])
    Membership.objects.create(user=user, organization=organization, role=Membership.Role.ADMIN)
    return user


def _decide(enrollment: Enrollment, status: str, manager, admin) -> None:
    if status == "applied":
        return
    if status == "under_review":
        services.enrollment_transition(enrollment=enrollment, to_status="under_review", by=manager)
        return
    if status == "rejected":
        services.enrollment_decide(
            enrollment=enrollment,
            approve=False,
            by=manager,
            reason="Meter is not interval-capable.",
        )
        return
    services.enrollment_decide(enrollment=enrollment, approve=True, by=manager, reason="Approved.")
    if status == "suspended":
        services.enrollment_transition(
            enrollment=enrollment,
            to_status="suspended",
            by=manager,
            reason="Meter communication lost.",
        )
    elif status == "withdrawn":
        services.enrollment_transition(enrollment=enrollment, to_status="withdrawn", by=admin)
