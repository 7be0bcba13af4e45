"""Record on each settlement run who its lines bill (``SettlementRun.billed_parties``).

From now on the approval records the program's name and the billing identities of every
organization and site the run's lines point at (``settlements.runs.parties``), and the
billing export and the statements of a locked run print that record. Runs locked before
this migration get theirs from the rows as they stand when it runs, the nearest there is
to what they were approved for; runs not approved yet get none (their approval records
it). Reversing drops the column, so the backfill's reverse does nothing.
"""

from django.db import migrations, models

#: ``SettlementRun.LOCKED_STATUSES``, spelled out: a migration does not import the model.
LOCKED = ("approved", "exported", "superseded")
#: Runs per round trip: a season run has about a thousand sites.
BATCH = 50


def billed_parties_backfill(apps, schema_editor):
    """Give every approved, exported and superseded run a record read from the current
    rows, ``BATCH`` runs at a time (five queries a batch)."""
    SettlementRun = apps.get_model("settlements", "SettlementRun")
    SettlementLine = apps.get_model("settlements", "SettlementLine")
    Organization = apps.get_model("enrollment", "Organization")
    Site = apps.get_model("enrollment", "Site")
    run_ids = list(
        SettlementRun.objects.filter(status__in=LOCKED).order_by("pk")
        .values_list("pk", flat=True)
    )
    for start in range(0, len(run_ids), BATCH):
        batch = run_ids[start : start + BATCH]
        runs = list(
            SettlementRun.objects.filter(pk__in=batch).select_related("program").order_by("pk")
        )
        parties = {
            run.pk: {"program": run.program.name, "organizations": {}, "sites": {}} for run in runs
        }
        used = list(
            SettlementLine.objects.filter(run_id__in=batch)
            .order_by()
            .values_list("run_id", "organization_id", "site_id")
            .distinct()
        )
        organizations = {
            pk: {"legal_name": legal_name, "billing_account_number": account}
            for pk, legal_name, account in Organization.objects.filter(
                pk__in={organization_id for _, organization_id, _ in used}
            ).values_list("pk", "legal_name", "billing_account_number")
        }
        sites = {
            pk: {"name": name, "service_account_number": service_account}
            for pk, name, service_account in Site.objects.filter(
                pk__in={site_id for _, _, site_id in used if site_id is not None}
            ).values_list("pk", "name", "service_account_number")
        }
        for run_id, organization_id, site_id in used:
            parties[run_id]["organizations"][str(organization_id)] = organizations[organization_id]
            if site_id is not None:
                parties[run_id]["sites"][str(site_id)] = sites[site_id]
        for run in runs:
            run.billed_parties = parties[run.pk]
        SettlementRun.objects.bulk_update(runs, ["billed_parties"])


class Migration(migrations.Migration):
    dependencies = [
        ("enrollment", "0003_program_event_notices"),
        ("settlements", "0009_settlement_line_run_check_per_statement"),
    ]

    operations = [
        migrations.AddField(
            model_name="settlementrun",
            name="billed_parties",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(billed_parties_backfill, migrations.RunPython.noop),
    ]
