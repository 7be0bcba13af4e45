"""Settlement runs: a program's period settled into locked, itemized, explained lines.

Services (writes; keyword-only; each one transaction; ``by`` must be in Billing or
Program managers, else ``PermissionDenied``; refusals raise ``SettlementError`` whose
message can be shown to the user as it is):

- ``payment_rules_add(program=, rules=PaymentRules(...), by=)`` -> ``PaymentRuleVersion``.
  ``rules_for(program, on)`` -> the ``PaymentRules`` in effect on a day (a run uses its
  first day); a program without stored versions settles on its simple rates
  (``program_rates_rules``: capacity $/kW-month with the linear factor, energy $/kWh).
- ``settlement_run_create(program=, period_kind="month"|"season", period_start=,
  period_end=None, by=)`` -> a ``draft`` first version (1, or the next number after
  discarded ones). Refuses an overlap with any other run of the program (open, or
  approved: restate that one); superseded and discarded runs do not count.
- ``settlement_run_calculate(run=, by=)`` -> the run, ``calculated``, its lines replaced
  (see ``settlements.runs.calculation`` for what is read and how), within the caller's
  request. Refused once approved, and while a worker calculates the run.
- ``settlement_run_calculation_request(run=, by=)`` -> the run, ``calculating``: the
  console's calculate button. Compare-and-set (a second click is refused); the Celery task
  ``settlements.tasks.settlement_run_calculate_task(run_id, user_id)`` is enqueued on
  commit and calls ``settlement_run_calculate_background(run=, by=)`` on the
  "settlements" queue, which writes ``calculation_sites_done`` / ``_total`` as it goes and
  leaves the run ``calculated``, or back where it was with ``calculation_error``. A run
  ``calculating`` for longer than ``CALCULATION_TIME_LIMIT`` (``calculation_stale``) lost
  its worker and may be calculated again (see ``settlements.runs.background``).
- ``settlement_run_approve(run=, by=)`` -> the run, ``approved``; four eyes (not the
  calculating user), every line ``locked``, who the lines bill recorded
  (``billed_parties``), the restated version ``superseded``.
- ``settlement_run_restate(run=, by=)`` -> the next version, ``calculated``, holding only
  the differences from all approved versions of the period; ``None`` (and no run) when
  nothing changed. Refused while the period's latest version is unfinished. A version
  number is never reused: the next one is one more than the period's highest, discarded
  versions included (``next_version``).
- ``settlement_run_restatement_request(run=, by=)`` -> the next version, ``calculating``:
  the console's restate button, calculated by the same task as above. When nothing
  changed it stays, ``calculated`` with no line and notes saying so, to be discarded.
- ``settlement_run_discard(run=, by=, reason=)`` -> the run, ``discarded``: a draft or
  calculated run (or one whose calculation is ``calculation_stale``) loses its lines
  (the disputes they carried are carried by none again) and stays on record with who
  discarded it, when and why (``discarded_by``, ``discarded_at``, ``discard_reason``, a
  reason required). Refused for approved, exported and superseded runs and while a
  worker calculates the run.
- ``settlements.billing.billing_export_create(run=, by=)`` -> ``BillingExport`` of an
  approved, exported or superseded run (an approved run becomes ``exported``; a
  superseded one stays so, since its restatement holds only the differences).

Selectors (``settlements.runs.selectors``): ``settlement_runs(program_id=, status=,
period_kind=, on=)``, ``run_lines(run)``, ``run_totals_by_kind(run)``,
``run_versions(run)``, ``run_exports(run)``; ``is_settlement_staff(user)`` for pages.

Statuses: draft -> calculated -> approved -> exported (draft or calculated -> calculating ->
calculated in the background); an approved or exported version is superseded once its
restatement is approved; a draft or calculated version may be discarded instead. A
discarded run is a record only: no service takes it (``discarded_refusal``), it takes no
line, and it is never the period's latest version, a statement, an export or in the
API; the console lists it with who discarded it, when and why. Locked
lines refuse ``save``/``delete`` (``settlements.models.LockedLineError``) and, on
PostgreSQL, any UPDATE or DELETE.
A participant statement of a period is the sum of its lines over all versions that are
approved, exported or superseded.
"""

from settlements.runs.access import is_settlement_staff, require_settlement_staff
from settlements.runs.background import (
    settlement_run_calculate_background,
    settlement_run_calculation_request,
    settlement_run_restatement_request,
)
from settlements.runs.errors import SettlementError
from settlements.runs.rules import payment_rules_add, program_rates_rules, rules_for
from settlements.runs.services import (
    CALCULATION_TIME_LIMIT,
    calculation_stale,
    discarded_refusal,
    settlement_run_approve,
    settlement_run_calculate,
    settlement_run_create,
    settlement_run_discard,
    settlement_run_restate,
)

__all__ = [
    "CALCULATION_TIME_LIMIT",
    "SettlementError",
    "calculation_stale",
    "discarded_refusal",
    "is_settlement_staff",
    "payment_rules_add",
    "program_rates_rules",
    "require_settlement_staff",
    "rules_for",
    "settlement_run_approve",
    "settlement_run_calculate",
    "settlement_run_calculate_background",
    "settlement_run_calculation_request",
    "settlement_run_create",
    "settlement_run_discard",
    "settlement_run_restate",
    "settlement_run_restatement_request",
]
