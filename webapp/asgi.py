"""ASGI entry point: HTTP through Django (gateway completions may skip it), websockets through Channels."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import django  # noqa: E402

django.setup(set_prefix=False)

from webapp.asgi_body import DiskSpooledASGIHandler  # noqa: E402

django_http = DiskSpooledASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from jobs.routing import websocket_urlpatterns  # noqa: E402
from models_app.gateway.fastpath import GatewayFastPath  # noqa: E402
from webapp.limits import RequestBodyLimit  # noqa: E402

application = ProtocolTypeRouter(
    {
        # One self-hosted process serves its own static files; a proxy in front
        # may serve /static/ itself instead. The gateway's completions skip Django when they can.
        # Every body is bounded before anything reads it (webapp/limits.py).
        "http": RequestBodyLimit(GatewayFastPath(ASGIStaticFilesHandler(django_http))),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
