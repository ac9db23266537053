"""Who may take a web session over (`WebHub.takeover`): only its own page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from portal.web.sessions import AJAX, WEBSOCKET, WebHub


@dataclass
class Page:
    key: str
    csessid: str
    bound: bool
    address: str
    cuid: str = "c1"
    present: bool = False

    def page_present(self) -> bool:
        return self.present


def hub_with(*pages: Page) -> WebHub:
    hub = WebHub(cast(Any, None), linger=60, keepalive=25, ping=lambda link: None,
                 pause=lambda link, paused, why: None)
    for page in pages:
        hub.by_page.setdefault((page.key, page.csessid, page.bound), []).append(
            cast(Any, page))
    return hub


def test_a_bound_session_needs_its_secret_not_a_url_id() -> None:
    bound = Page(WEBSOCKET, "s3cret", True, "10.0.0.1")
    hub = hub_with(bound)
    assert hub.takeover(WEBSOCKET, "s3cret", "c2", bound=True, address="10.9.9.9") is bound
    assert hub.takeover(WEBSOCKET, "s3cret", "c1", address="10.0.0.1") is None  # URL id


def test_a_url_id_resumes_only_from_its_own_address() -> None:
    evennia = Page(WEBSOCKET, "django-key", False, "10.0.0.1")
    hub = hub_with(evennia)
    assert hub.takeover(WEBSOCKET, "django-key", "c1", address="10.0.0.2") is None
    assert hub.takeover(WEBSOCKET, "django-key", "c1", address="10.0.0.1") is evennia


def test_ajax_ids_travel_in_bodies_only() -> None:
    ajax = Page(AJAX, "body-id", False, "10.0.0.1", present=True)
    hub = hub_with(ajax)
    assert hub.takeover(AJAX, "body-id", "c9") is ajax
