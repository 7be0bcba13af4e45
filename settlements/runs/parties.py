"""Who a settlement run bills: the program's name and, for every organization and site its
lines point at, the identities billing pays or charges.

Approved lines were approved for a billing account, a legal name, a site and its utility
service account as they stood at the approval. Those rows keep changing afterwards (an
account is renumbered, a site renamed), so the approval records them on the run
(``SettlementRun.billed_parties``, see :func:`billed_parties_read`), and the billing
export and the participant statements of a locked run print that record, never the
current rows: the same run exported twice gives the same bytes, and the lines bill the
account they were approved for. A run not approved yet has no record: it shows the current
rows, which is what its approval will record.

The record, as stored (JSON, ids as strings)::

    {"program": "Summer Peak",
     "organizations": {"12": {"legal_name": "Acme Cold Storage LLC",
                              "billing_account_number": "BA-7001"}},
     "sites": {"40": {"name": "Acme Plant", "service_account_number": "SA-100040"}}}
"""

from __future__ import annotations

import dataclasses
from typing import Any

from enrollment.models import Organization, Site
from settlements.models import SettlementLine, SettlementRun


@dataclasses.dataclass(frozen=True)
class BilledOrganization:
    """An organization as billed: its legal name and billing account number."""

    legal_name: str
    billing_account_number: str

    @classmethod
    def of(cls, organization: Organization) -> BilledOrganization:
        """``organization`` as it stands now."""
        return cls(organization.legal_name, organization.billing_account_number)


@dataclasses.dataclass(frozen=True)
class BilledSite:
    """A site as billed: its name and utility service account number."""

    name: str
    service_account_number: str


@dataclasses.dataclass(frozen=True)
class BilledParties:
    """The program's name and the organizations and sites of a run's lines, by id."""

    program: str
    organizations: dict[int, BilledOrganization]
    sites: dict[int, BilledSite]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in ``SettlementRun.billed_parties`` (ids as strings, in id
        order)."""
        return {
            "program": self.program,
            "organizations": {
                str(pk): dataclasses.asdict(party)
                for pk, party in sorted(self.organizations.items())
            },
            "sites": {
                str(pk): dataclasses.asdict(party) for pk, party in sorted(self.sites.items())
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BilledParties:
        """The parties of a stored record (:meth:`to_dict`)."""
        return cls(
            program=data["program"],
            organizations={
                int(pk): BilledOrganization(**party) for pk, party in data["organizations"].items()
            },
            sites={int(pk): BilledSite(**party) for pk, party in data["sites"].items()},
        )


def billed_parties_read(run: SettlementRun, *, organization_id: int | None = None) -> BilledParties:
    """The current rows of the program, and of every organization and site ``run``'s lines
    point at (only those of ``organization_id``'s lines when given). Two queries, whatever
    the number of lines; the program is ``run.program`` (fetch it with the run).

    What ``settlement_run_approve`` records; what :func:`billed_parties` falls back to for
    a run not approved yet.
    """
    lines = SettlementLine.objects.filter(run=run).order_by()
    if organization_id is not None:
        lines = lines.filter(organization_id=organization_id)
    organizations = {
        pk: BilledOrganization(legal_name, account)
        for pk, legal_name, account in Organization.objects.filter(
            pk__in=lines.values("organization_id")
        ).values_list("pk", "legal_name", "billing_account_number")
    }
    sites = {
        pk: BilledSite(name, service_account)
        for pk, name, service_account in Site.objects.filter(
            pk__in=lines.filter(site__isnull=False).values("site_id")
        ).values_list("pk", "name", "service_account_number")
    }
    return BilledParties(program=run.program.name, organizations=organizations, sites=sites)


def billed_parties(run: SettlementRun, *, organization_id: int | None = None) -> BilledParties:
    """Who ``run``'s lines bill: for a locked run (approved, exported, superseded) the
    record its approval made, whole and without a query; for any other run the current
    rows (:func:`billed_parties_read`, two queries, limited to ``organization_id``'s lines
    when given).

    A locked run without a record (locked by other means than the approval; migration
    0010 recorded the runs locked before it) is read from the current rows too.
    """
    if run.status in SettlementRun.LOCKED_STATUSES and run.billed_parties:
        return BilledParties.from_dict(run.billed_parties)
    return billed_parties_read(run, organization_id=organization_id)
