"""Every participant page and API answer is scoped to the participant's organizations.

A sweep over the URL patterns themselves (so a page added later is swept too), on the demo
data: Harbor's admin against Northside, which has sites, meters, audits, contacts and
methods, enrollments, events and participations, performance, statements and a dispute.
One event is made to target Northside alone, so that an event id is Northside's only.

- Northside's organization in the path: every portal page answers 404, to GET and POST.
- Harbor's organization in the path, Northside's object in the rest: 404 as well.
- Harbor's own pages (each id filled with one of Harbor's objects): none shows a word of
  Northside's (its name, billing account, sites, contacts or their addresses).
- The API: no list holds Northside's rows, no detail or action of Northside's objects
  answers 2xx, and the staff-only endpoints refuse a participant.
- Every other page (console, admin) refuses a participant.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from dr_platform.demo import load_demo_data
from enrollment.models import (
    Audit,
    Contact,
    ContactMethod,
    Enrollment,
    Meter,
    Organization,
    Program,
)
from events.models import Event, Participation
from settlements.disputes import dispute_raise
from settlements.models import (
    BillingExport,
    Dispute,
    MeterDataImport,
    SettlementLine,
    SettlementRun,
)

pytestmark = pytest.mark.django_db

#: Path parameters and the objects of an organization that may fill them.
OWNED = {
    "enrollment_id": lambda org: Enrollment.objects.filter(site__organization=org),
    "audit_id": lambda org: Audit.objects.filter(site__organization=org),
    "contact_id": lambda org: Contact.objects.filter(organization=org),
    "method_id": lambda org: ContactMethod.objects.filter(contact__organization=org),
    "event_id": lambda org: Event.objects.filter(
        participations__enrollment__site__organization=org
    ).distinct(),
    "participation_id": lambda org: Participation.objects.filter(
        enrollment__site__organization=org
    ),
    "meter_id": lambda org: Meter.objects.filter(site__organization=org),
    "run_id": lambda org: SettlementRun.objects.filter(lines__organization=org).distinct(),
    "line_id": lambda org: SettlementLine.objects.filter(organization=org),
    "dispute_id": lambda org: Dispute.objects.filter(organization=org),
}
#: Parameters that name nothing an organization owns (any program may be applied to).
SHARED = {"program_id"}

#: API endpoints (by route name) and the organization's rows they may list.
API_ROWS = {
    "organization": lambda org: Organization.objects.filter(pk=org.pk),
    "program": lambda org: Program.objects.all(),  # programs are public to participants
    "site": lambda org: org.sites.all(),
    "enrollment": OWNED["enrollment_id"],
    "event": OWNED["event_id"],
    "participation": OWNED["participation_id"],
    "meterdataimport": lambda org: MeterDataImport.objects.filter(meter__site__organization=org),
    "settlementrun": OWNED["run_id"],
    "billingexport": lambda org: BillingExport.objects.filter(run__lines__organization=org),
}

PARTICIPANT_PREFIXES = ("portal/", "api/", "accounts/", "hooks/", "static/", "healthz")
NOT_FOUND_OR_REFUSED = {403, 404, 405}
#: Pages outside those prefixes that anyone may open: the landing redirect and the admin's
#: own login form (which tells a participant they are not authorized).
PUBLIC_ROUTES = {"", "admin/login/"}


def _routes() -> list[tuple[str, URLPattern]]:
    """(route, pattern) of every URL pattern, routes joined from their resolvers."""

    def walk(patterns, prefix: str):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern

    return list(walk(get_resolver().url_patterns, ""))


def _path(route: str, values: dict[str, object]) -> str:
    """The URL of a ``path()`` route with each ``<converter:name>`` replaced."""
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda match: str(values[match.group(1)]), route)


def _not_found(get: int, post: int) -> bool:
    """A GET and a POST of another organization's page: 404, or 405 to the method a page
    does not take (checked before anything is looked up), with a 404 to the other."""
    return {get, post} <= {404, 405} and 404 in {get, post}


def _parameters(route: str) -> list[str]:
    return re.findall(r"<(?:\w+:)?(\w+)>", route)


@pytest.fixture
def world(settings, tmp_path):
    """The demo data, and an event that targets Northside's sites only."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.NOTIFICATION_MODE = "sandbox"
    load_demo_data()
    harbor = Organization.objects.get(billing_account_number="BA-100001")
    northside = Organization.objects.get(billing_account_number="BA-100002")
    enrollment = Enrollment.objects.filter(site__organization=northside).first()
    starts = timezone.now() + dt.timedelta(days=2)
    event = Event.objects.create(
        program=enrollment.program,
        status=Event.Status.SCHEDULED,
        starts_at=starts,
        ends_at=starts + dt.timedelta(hours=2),
        created_by=get_user_model().objects.get(username="manager"),
    )
    Participation.objects.create(
        event=event, enrollment=enrollment, committed_kw=enrollment.nominations.last().committed_kw
    )
    if not Dispute.objects.filter(organization=northside).exists():
        line = SettlementLine.objects.filter(
            organization=northside, run__status__in=SettlementRun.LOCKED_STATUSES
        ).first()
        if line is not None:
            dispute_raise(
                line=line,
                by=get_user_model().objects.get(username="northside"),
                comment="The meter was read wrongly that day.",
            )
    missing = [name for name, pk in _theirs(harbor, northside).items() if pk is None]
    if missing:
        pytest.skip(f"the demo data has no Northside objects for {', '.join(missing)} today")
    return harbor, northside


@pytest.fixture
def harbor_client(client):
    client.force_login(get_user_model().objects.get(username="harbor"))
    return client


def _theirs(ours: Organization, theirs: Organization) -> dict[str, int | None]:
    """Per parameter, an object of ``theirs`` that is not also ``ours`` (an event can be
    both organizations'), or None. A run is: a statement of it is each organization's own
    page, so the sweeps of foreign objects take its lines instead."""
    found = {}
    for name, owned in OWNED.items():
        objects = owned(theirs)
        if name != "run_id":
            objects = objects.exclude(pk__in=owned(ours).values("pk"))
        found[name] = objects.values_list("pk", flat=True).first()
    return found


def _northside_words(northside: Organization) -> list[str]:
    """Text that only Northside's data holds."""
    words = [northside.legal_name, northside.billing_account_number]
    words += list(northside.sites.values_list("name", flat=True))
    words += list(Contact.objects.filter(organization=northside).values_list("name", flat=True))
    words += list(
        ContactMethod.objects.filter(contact__organization=northside).values_list(
            "address", flat=True
        )
    )
    return [word for word in words if word]


def _portal_routes() -> list[str]:
    return [route for route, _ in _routes() if route.startswith("portal/")]


def test_the_sweep_covers_every_parameter_of_the_portal():
    """A page added with a parameter the sweep does not know fails here, not silently."""
    unknown = {
        name
        for route in _portal_routes()
        for name in _parameters(route)
        if name not in OWNED and name not in SHARED and name != "organization_id"
    }
    assert unknown == set()


def _state_of(organization: Organization) -> tuple:
    """What a POST of a participant's page could change of ``organization``'s data."""
    return (
        ContactMethod.objects.filter(contact__organization=organization).count(),
        list(
            Participation.objects.filter(enrollment__site__organization=organization)
            .order_by("pk")
            .values_list("status", flat=True)
        ),
        Dispute.objects.filter(organization=organization).count(),
        Enrollment.objects.filter(site__organization=organization, status="active").count(),
    )


def _get_and_post(client, path: str) -> tuple[int, int]:
    return client.get(path).status_code, client.post(path, {}).status_code


def _another_organizations_pages_answer_404(world, harbor_client) -> None:
    harbor, northside = world
    values = _theirs(harbor, northside)
    values["program_id"] = Enrollment.objects.filter(site__organization=harbor).first().program_id
    values["organization_id"] = northside.pk
    answered = {}
    for route in _portal_routes():
        if "organization_id" not in _parameters(route):
            continue
        path = _path(route, values)
        answered[path] = _get_and_post(harbor_client, path)
    assert len(answered) > 20
    assert {path: codes for path, codes in answered.items() if not _not_found(*codes)} == {}


def _another_organizations_objects_answer_404_under_ones_own(world, harbor_client) -> None:
    harbor, northside = world
    before = _state_of(northside)
    own_run = OWNED["run_id"](harbor).first()
    answered = {}
    for route in _portal_routes():
        names = _parameters(route)
        foreign = [name for name in names if name in OWNED]
        # A run holding Harbor's lines is Harbor's statement too; only its line is foreign.
        if foreign in ([], ["run_id"]):
            continue
        values = _theirs(harbor, northside)
        values["organization_id"] = harbor.pk
        if "line_id" in names:
            values["run_id"] = own_run.pk
            values["line_id"] = OWNED["line_id"](northside).filter(run=own_run).first().pk
        path = _path(route, values)
        answered[path] = _get_and_post(harbor_client, path)
    assert len(answered) > 10
    assert {path: codes for path, codes in answered.items() if not _not_found(*codes)} == {}
    after = _state_of(northside)
    assert after == before


def _ones_own_pages_show_nothing_of_another_organization(world, harbor_client) -> None:
    harbor, northside = world
    words = _northside_words(northside)
    values = {name: owned(harbor).first().pk for name, owned in OWNED.items()}
    values["program_id"] = Enrollment.objects.filter(site__organization=harbor).first().program_id
    values["organization_id"] = harbor.pk
    values["line_id"] = OWNED["line_id"](harbor).filter(run_id=values["run_id"]).first().pk
    # A participation measured, so that its performance page has something to show.
    values["participation_id"] = (
        OWNED["participation_id"](harbor).filter(performances__is_current=True).first().pk
    )
    opened, leaks = [], {}
    for route in _portal_routes():
        path = _path(route, values)
        response = harbor_client.get(path)
        if response.status_code == 405:  # a page that only takes a POST
            continue
        assert response.status_code in {200, 302}, path
        opened.append(path)
        body = response.content.decode("utf-8", "replace")
        found = [word for word in words if word in body]
        if found:
            leaks[path] = found
    assert len(opened) > 20
    assert leaks == {}


def _the_api_holds_nothing_of_another_organization(world, harbor_client) -> None:
    harbor, northside = world
    words = _northside_words(northside)
    routes = [
        (route, pattern)
        for route, pattern in _routes()
        if route.startswith("api/") and pattern.name and "format" not in route
    ]
    listed, refused, leaks, answered = [], [], {}, {}
    for route, pattern in routes:
        basename, _, action = pattern.name.partition("-")
        if action == "list":
            response = harbor_client.get(f"/api/{basename_path(route)}")
            if response.status_code == 403:
                refused.append(basename)
                continue
            assert response.status_code == 200, route
            listed.append(basename)
            body = response.content.decode()
            own = set(API_ROWS[basename](harbor).values_list("pk", flat=True))
            ids = {row["id"] for row in response.json()["results"]}
            if ids - own or any(word in body for word in words):
                leaks[basename] = sorted(ids - own)
        elif action and basename in API_ROWS:
            theirs = API_ROWS[basename](northside).exclude(
                pk__in=API_ROWS[basename](harbor).values("pk")
            )
            pk = theirs.values_list("pk", flat=True).first()
            if pk is None:
                continue
            path = "/" + re.sub(r"\(\?P<pk>[^)]*\)", str(pk), route).replace("^", "").replace(
                "$", ""
            )
            answered[path] = (
                harbor_client.get(path).status_code,
                harbor_client.post(path, {}, content_type="application/json").status_code,
            )
    assert sorted(listed) == [
        "enrollment", "event", "organization", "participation", "program", "site",
    ]  # fmt: skip
    assert sorted(refused) == ["billingexport", "meterdataimport", "settlementrun"]
    assert leaks == {}
    assert len(answered) >= 5
    assert {
        path: codes for path, codes in answered.items() if not set(codes) <= NOT_FOUND_OR_REFUSED
    } == {}


def basename_path(route: str) -> str:
    """``organizations/`` from the list route ``api/^organizations/$``."""
    return route.removeprefix("api/").replace("^", "").replace("$", "")


def _staff_pages_refuse_a_participant(world, harbor_client) -> None:
    harbor, _ = world
    answered = {}
    for route, _ in _routes():
        if route.startswith(PARTICIPANT_PREFIXES) or route in PUBLIC_ROUTES or "(?P" in route:
            continue
        values = dict.fromkeys(_parameters(route), 1)
        path = _path(route, values)
        answered[path] = harbor_client.get(path).status_code
    assert len(answered) > 30
    assert {path: code for path, code in answered.items() if code not in {302, 403, 404}} == {}


def test_a_participant_reaches_nothing_of_another_organization(world, harbor_client):
    """The sweeps on one load of the demo data (it takes seconds): the pages that only
    read first, then those that are also sent a POST."""
    _ones_own_pages_show_nothing_of_another_organization(world, harbor_client)
    _the_api_holds_nothing_of_another_organization(world, harbor_client)
    _staff_pages_refuse_a_participant(world, harbor_client)
    _another_organizations_pages_answer_404(world, harbor_client)
    _another_organizations_objects_answer_404_under_ones_own(world, harbor_client)
