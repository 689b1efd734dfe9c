"""The version check every patch module runs before it touches its dependency."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata


class UnsupportedDependencyVersion(RuntimeError):
    """A patch was asked to apply to a version of its dependency it was not written against."""


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (a pip name), or None when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def check_version(*, patch_module: str, distributions: Sequence[str], supported: str) -> str:
    """Return the installed version of the first of ``distributions`` found, if ``supported`` allows it.

    ``supported`` is a version specifier (``"==1.16.0"``); a local label such as ``+cpu`` is ignored,
    as PEP 440 ignores it for ``==``. Raises :class:`UnsupportedDependencyVersion`, naming the patch
    module and both versions, when the installed version is outside it or nothing is installed.
    """
    from packaging.specifiers import SpecifierSet

    for distribution in distributions:
        version = installed_version(distribution)
        if version is not None:
            break
    else:
        raise UnsupportedDependencyVersion(
            f"{patch_module} patches {' or '.join(distributions)} {supported}, which is not installed."
        )
    if not SpecifierSet(supported).contains(version, prereleases=True):
        raise UnsupportedDependencyVersion(
            f"{patch_module} was written against {distribution} {supported}, but {distribution} "
            f"{version} is installed. It patches private internals that may have moved: check the patch "
            f"against {distribution} {version} (its docstring says what it relies on, its tests check it), "
            f"then update SUPPORTED_VERSIONS in {patch_module}."
        )
    return version
