"""The Python client of the linkage service (``Client``) and the commands built on it. Needs
only httpx: providers and researchers install no service packages to use it."""

from .http import Client, ServiceError

__all__ = ["Client", "ServiceError"]
