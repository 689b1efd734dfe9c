"""What a person sees of the audit log: their own sign-ins (and the failed tries with their name), the
API key they made, from which address; not what others did."""

import pytest

from jobs.services import job_create
from jobs.states import JobKind
from tests.browser.session import log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_the_activity_page_shows_your_sign_ins_keys_and_failed_tries(live_site, browser_page, alice, bob):
    job_create(owner=bob, kind=JobKind.MERGE, params={"adapter_id": 7}, target_queue="nobody-listens")
    page = browser_page
    page.goto(f"{live_site}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "not her password")
    page.click("button[type=submit]")
    log_in(page, live_site)
    page.goto(f"{live_site}/accounts/tokens/")
    page.fill("#id_name", "nightly report")
    page.click("form button.primary")
    page.wait_for_selector("#new-token")
    page.click("nav >> text=Activity")
    page.wait_for_selector("#activity-table")
    rows = page.locator("#activity-table tbody tr")
    assert [rows.nth(i).locator("td").nth(1).text_content() for i in range(rows.count())] == [
        f"API key 'nightly report' ({alice.api_tokens.get().prefix}…)",
        "Signed in",
        "Sign-in failed for 'alice'",
    ]
    assert "127.0.0.1 web" in rows.first.text_content()
    assert page.locator("#filter-who").count() == 0  # only administrators look at others
    page.select_option("#filter-action", "signed_in")
    page.click("#activity-filters button")
    page.wait_for_url("**action=signed_in**")
    assert page.locator("#activity-table tbody tr").count() == 1
