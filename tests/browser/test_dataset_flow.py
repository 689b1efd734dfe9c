"""What a person sees: log in, upload a file with three bad lines, clean it."""

import re

import pytest

from tests.browser.session import log_in
from tests.datasets_app.factories import alpaca_lines

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]


def _file_with_three_bad_lines(path):
    lines = alpaca_lines(40)
    lines[2] = '{"instruction": "unfinished'
    lines[9] = '{"question": "What is BP?", "answer": "Blood pressure."}'
    lines[30] = '{"instruction": "Say hi", "output": 42}'
    lines.append(lines[0])  # an exact duplicate for cleaning to remove
    path.write_text("\n".join(lines) + "\n")
    return path


def test_it_reports_three_bad_lines_and_cleans_the_rest(
    live_site, browser_page, django_user_model, demo_base_model, tmp_path
):
    django_user_model.objects.create_user(username="alice", password="alice-password-1")
    page = browser_page
    log_in(page, live_site)
    page.wait_for_url(re.compile(r"/datasets/$"))

    page.set_input_files("#upload-file", str(_file_with_three_bad_lines(tmp_path / "clinic.jsonl")))
    page.click("text=Upload and check")
    page.wait_for_url(re.compile(r"/datasets/files/\d+/$"))
    page.wait_for_selector("#report-counts")  # the page reloads itself when the check ends

    categories = page.locator("#report-counts tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.category, r.querySelector('.count').textContent.trim()])"
    )
    assert sorted(categories) == [["invalid_json", "1"], ["unknown_format", "1"], ["wrong_type", "1"]]
    reported_lines = page.locator("#report-counts .example").evaluate_all(
        "els => els.map(e => e.dataset.line)"
    )
    assert sorted(reported_lines, key=int) == ["3", "10", "31"]
    assert page.text_content("#report-valid-rows").strip() == "38"

    page.click("#continue-button")
    page.wait_for_url(re.compile(r"/datasets/versions/\d+/$"))
    page.wait_for_selector("#histogram canvas")
    assert page.text_content("#stat-rows").strip() == "38"

    page.click("#preview-button")
    page.wait_for_selector("#preview-results")
    assert page.text_content("tr[data-rule=exact_dedup] .removed").strip() == "1"
    assert page.text_content("#preview-rows-out").strip() == "37"

    page.click("#apply-button")
    page.wait_for_selector("a.child-version")
    page.click("a.child-version")
    page.wait_for_selector("#histogram canvas")
    assert page.text_content("#stat-rows").strip() == "37"
    assert "Cleaned from" in page.text_content("main")
