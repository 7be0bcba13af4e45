"""Forms of the participant portal's enrollment pages.

Forms check only what a form can know (a number is a number, a ticked site has a kW);
the program's rules live in ``enrollment.services``, whose ValidationErrors the views put
back on these forms with ``add_service_errors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError

from dr_platform import outbound
from enrollment.models import ContactMethod, Program, Site

KW_FIELD = {"max_digits": 12, "decimal_places": 3, "min_value": Decimal("0.001")}


def add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Put a service's ValidationError on ``form``: keyed messages on their field when the
    form has it, everything else at the top of the form."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            target = field if field in form.fields else None
            for message in errors:
                form.add_error(target, message)
    else:
        for message in error.messages:
            form.add_error(None, message)


class EnrollmentApplyForm(forms.Form):
    """Apply to one program: tick sites, give committed kW per site, accept the terms.

    One checkbox (``site_<id>``) and one kW field (``kw_<id>``) per site of the
    organization; ``site_rows()`` pairs them up for the template.
    """

    accept_terms = forms.BooleanField(
        required=False, label="I have read and accept the program terms shown above."
    )
    terms_version = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: object, program: Program, sites: Iterable[Site], **kwargs: object):
        kwargs.setdefault("initial", {"terms_version": program.terms_version})
        super().__init__(*args, **kwargs)
        self.program = program
        self.sites = list(sites)
        for site in self.sites:
            self.fields[f"site_{site.pk}"] = forms.BooleanField(
                required=False, label=f"Enroll {site.name}"
            )
            self.fields[f"kw_{site.pk}"] = forms.DecimalField(
                required=False, label=f"Committed kW for {site.name}", **KW_FIELD
            )

    def site_rows(self) -> Iterator[tuple[Site, forms.BoundField, forms.BoundField]]:
        for site in self.sites:
            yield site, self[f"site_{site.pk}"], self[f"kw_{site.pk}"]

    def clean(self) -> dict:
        cleaned = super().clean()
        for site in self.sites:
            if cleaned.get(f"site_{site.pk}") and cleaned.get(f"kw_{site.pk}") is None:
                if f"kw_{site.pk}" not in self.errors:
                    self.add_error(f"kw_{site.pk}", "Give the kW this site commits to shed.")
        return cleaned

    def commitments(self) -> dict[Site, Decimal]:
        """The ticked sites and their committed kW (call after ``is_valid()``)."""
        return {
            site: self.cleaned_data[f"kw_{site.pk}"]
            for site in self.sites
            if self.cleaned_data.get(f"site_{site.pk}")
        }

    def accepted_terms_version(self) -> str | None:
        """The terms version the user saw and accepted, or None when the box is not ticked.

        The version travels with the form, so terms changed while the user was reading
        are not accepted on their behalf: the service refuses a version that is not current.
        """
        if not self.cleaned_data.get("accept_terms"):
            return None
        return self.cleaned_data.get("terms_version") or None


class NominationChangeForm(forms.Form):
    committed_kw = forms.DecimalField(label="New committed kW", **KW_FIELD)
    reason = forms.CharField(
        required=False, max_length=300, label="Reason (optional)", widget=forms.TextInput
    )


class WithdrawForm(forms.Form):
    reason = forms.CharField(
        required=False,
        label="Why are you withdrawing? (optional, the program manager sees it)",
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class ContactForm(forms.Form):
    name = forms.CharField(max_length=120)
    title = forms.CharField(max_length=120, required=False)
    sites = forms.ModelMultipleChoiceField(
        queryset=Site.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked for a contact who covers every site.",
    )

    def __init__(self, *args: object, sites: Iterable[Site], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # Only this organization's sites can be chosen; any other id is an invalid choice.
        self.fields["sites"].queryset = sites


class ContactMethodForm(forms.Form):
    kind = forms.ChoiceField(choices=ContactMethod.Kind.choices)
    address = forms.CharField(
        max_length=300,
        help_text="Phone number, email address, pager id or webhook URL, by kind.",
    )
    escalation_order = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=99,
        help_text="1 is tried first; leave empty to add it after the existing methods.",
    )
    wctp_endpoint = forms.ChoiceField(
        required=False,
        label="WCTP gateway",
        help_text="WCTP pagers only: the paging gateway your pager is reached through.",
    )
    snpp_host = forms.CharField(
        required=False,
        max_length=200,
        label="SNPP server",
        help_text="SNPP pagers only: the paging server as host:port.",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # The platform pages only through the gateways its operator configured (they hold
        # its WCTP credentials), so the participant picks one instead of typing a URL.
        self.fields["wctp_endpoint"].choices = [("", "---------")] + [
            (url, url) for url in outbound.trusted_wctp_gateways()
        ]

    def clean(self) -> dict:
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind == ContactMethod.Kind.PAGER_WCTP and not cleaned.get("wctp_endpoint"):
            if "wctp_endpoint" not in self.errors:
                self.add_error("wctp_endpoint", "A WCTP pager needs its paging gateway.")
        if kind != ContactMethod.Kind.PAGER_WCTP:
            cleaned["wctp_endpoint"] = ""
        if kind != ContactMethod.Kind.PAGER_SNPP:
            cleaned["snpp_host"] = ""
        return cleaned


class VerificationCodeForm(forms.Form):
    code = forms.CharField(
        max_length=12,
        label="Verification code",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )
