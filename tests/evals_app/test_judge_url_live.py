"""The judge's address through the real ASGI server: every way of pointing inside the network is refused
on the form, with the field named, and nothing is started."""

from __future__ import annotations

import re

import httpx
import pytest

from evals_app.models import Evaluation
from models_app.models import Adapter, BaseModel
from tests.datasets_app.factories import dataset_with_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# The site under test allows 127.0.0.1 (tests/environment.py): every other inside address is refused.
INSIDE = "This address points inside the server"
REFUSED = [
    ("http://[::1]:8000/v1", INSIDE),
    ("http://2130706434:8000/v1", INSIDE),  # 127.0.0.2, as one decimal number
    ("http://0177.0.0.2/v1", INSIDE),
    ("http://127.2/v1", INSIDE),
    ("http://10.1.2.3/v1", INSIDE),
    ("http://169.254.169.254/latest/meta-data/", INSIDE),
    ("http://[::ffff:10.0.0.1]/v1", INSIDE),
    ("http://100.64.0.1/v1", INSIDE),
    ("https://8.8.8.8/v1?x=", "without “?” or “#”"),
    ("https://key:secret@8.8.8.8/v1", "user name or password"),
]


def _csrf(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def test_it_refuses_inside_judge_addresses_through_the_real_server(live_site, alice):
    base_model = BaseModel.objects.create(hf_id="tests/base", display_name="Test base", local_dir="/none")
    adapter = Adapter.objects.create(owner=alice, base_model=base_model, name="adapter", path="/x", rank=8)
    _, _, version = dataset_with_version(alice, rows=4)
    with httpx.Client(base_url=live_site, timeout=30) as browser:
        login = browser.get("/accounts/login/").text
        browser.post(
            "/accounts/login/",
            data={"username": "alice", "password": "alice-password-1", "csrfmiddlewaretoken": _csrf(login)},
            headers={"Referer": f"{live_site}/accounts/login/"},
        )
        form_url = f"/evaluations/new?adapter={adapter.pk}"
        for judge_url, words in REFUSED:
            page = browser.get(form_url)
            assert page.status_code == 200
            response = browser.post(
                "/evaluations/new",
                data={
                    "csrfmiddlewaretoken": _csrf(page.text),
                    "adapter": adapter.pk,
                    "dataset_version": version.pk,
                    "split": "validation",
                    "max_rows": 5,
                    "max_tokens": 16,
                    "temperature": 0,
                    "top_p": 1,
                    "judge_base_url": judge_url,
                    "judge_model": "judge",
                    "judge_rubric": "Correct.",
                    "judge_api_key": "sk-judge",
                },
                headers={"Referer": f"{live_site}{form_url}"},
            )
            assert response.status_code == 200, judge_url
            assert words in response.text, judge_url
    assert not Evaluation.objects.exists()
