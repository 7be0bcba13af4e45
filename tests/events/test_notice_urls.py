"""The provider callback URLs in notices: reversed once, then filled in per message."""

from __future__ import annotations

import uuid

from django.test import override_settings
from django.urls import reverse, set_script_prefix

from events import notices


@override_settings(SITE_URL="https://dr.example.com")
def test_callback_urls_are_the_reversed_paths_of_each_uuid() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()

    assert notices.status_callback_url(first) == (
        "https://dr.example.com" + reverse("hooks:twilio_status", args=[first])
    )
    assert notices.status_callback_url(second).endswith(f"/{second}/")
    assert notices.gather_url(first) == (
        "https://dr.example.com" + reverse("hooks:twilio_gather", args=[first])
    )


@override_settings(SITE_URL="https://utility.example")
def test_callback_urls_follow_the_script_prefix() -> None:
    # Served under a path (FORCE_SCRIPT_NAME or a proxy's SCRIPT_NAME): the prefix is
    # part of the cached path, and a change of prefix is not served from the cache.
    value = uuid.uuid4()
    plain = notices.status_callback_url(value)
    set_script_prefix("/dr/")
    try:
        prefixed = notices.status_callback_url(value)
        reversed_there = reverse("hooks:twilio_status", args=[value])
    finally:
        set_script_prefix("/")

    assert prefixed == plain.replace("https://utility.example/", "https://utility.example/dr/")
    assert prefixed == "https://utility.example" + reversed_there
    assert notices.status_callback_url(value) == plain
