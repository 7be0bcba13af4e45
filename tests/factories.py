"""factory_boy factories shared by the tests."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from dr_platform.models import Membership
from enrollment.models import Organization

PASSWORD = "a-long-test-password-1"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            self.save()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    legal_name = factory.Sequence(lambda n: f"Business {n} Inc.")
    tier = Organization.Tier.B
    billing_account_number = factory.Sequence(lambda n: f"BA-{n:06d}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Membership.Role.ADMIN


def staff_user(group_name: str, **fields: object):
    """A staff user holding the named group (created by the roles migration)."""
    user = UserFactory(is_staff=True, **fields)
    user.groups.add(Group.objects.get(name=group_name))
    return user
