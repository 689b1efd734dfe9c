"""Signing in as a person does, for the browser tests: as Alice (tests/conftest.py's `alice`)."""

ALICE = ("alice", "alice-password-1")


def log_in(page, live_site: str) -> None:
    username, secret = ALICE
    page.goto(f"{live_site}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", secret)
    page.click("button[type=submit]")
