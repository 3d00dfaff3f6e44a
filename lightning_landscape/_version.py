"""The installed distribution's version (``pyproject.toml``), read from its metadata."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lightning-landscape")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
