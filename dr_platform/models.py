"""Platform-wide models: how participant users belong to organizations."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Membership(models.Model):
    """Links a participant user to an organization with a role.

    Participants are non-staff users; what they may see is exactly the organizations they
    have a membership in (see ``dr_platform.selectors``).
    """

    class Role(models.TextChoices):
        ADMIN = "admin", "Administrator"  # applies to enroll, manages contacts and members
        OPERATOR = "operator", "Operator"  # acknowledges events, manages contact methods
        VIEWER = "viewer", "Viewer"  # reads only

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        "enrollment.Organization", on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_unique")
        ]
        ordering = ["organization__legal_name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} · {self.organization} ({self.get_role_display()})"


class OutboxMessage(models.Model):
    """A message the sandbox channel "sent": kept here instead of reaching a provider.

    The demo and any deployment with ``NOTIFICATION_MODE=sandbox`` use it; the outbox page
    shows these to managers, and participants see those addressed to their own methods.
    """

    kind = models.CharField(max_length=16)  # the channel kind it would have used
    address = models.CharField(max_length=300)
    subject = models.CharField(max_length=300, blank=True)
    body = models.TextField()
    organization = models.ForeignKey(
        "enrollment.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="outbox_messages",
    )
    reference = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.kind} to {self.address}: {self.subject or self.body[:40]}"
