"""First-run set-up shared by `manage.py dev` and the docker image: the admin account."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model

from lathe_common.secret_files import secret_file_write


def admin_ensure(username: str = "admin") -> tuple[str, str | None]:
    """Create the admin account once. Returns (username, password or None if it existed before).

    The generated password is kept in DATA_DIR/admin_password (mode 600) so the
    launcher can remind the user of it on later runs.
    """
    password_file = settings.DATA_DIR / "admin_password"
    user_model = get_user_model()
    if user_model.objects.filter(username=username).exists():
        return username, password_file.read_text().strip() if password_file.exists() else None
    password = secrets.token_urlsafe(12)
    user_model.objects.create_superuser(username=username, email="", password=password)
    secret_file_write(password_file, password + "\n", replace=True)
    return username, password
