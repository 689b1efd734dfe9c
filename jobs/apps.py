from django.apps import AppConfig


class JobsConfig(AppConfig):
    """The job engine: each app registers the runners of its own kinds in its AppConfig.ready."""

    name = "jobs"
