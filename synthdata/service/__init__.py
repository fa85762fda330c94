"""The synthdata service: a FastAPI job server over a SQL job store (``synthdata serve``).

Needs the ``service`` extra (``pip install 'synthdata[service]'``); importing this package
does not import FastAPI: ``create_app`` loads it on first use.
"""

from __future__ import annotations

from typing import Any

from synthdata.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]


def create_app(settings: ServiceSettings | None = None) -> Any:
    """The FastAPI application (see ``synthdata.service.app``)."""
    try:
        from synthdata.service.app import create_app as _create_app
    except ImportError as err:
        from synthdata.errors import ConfigError

        raise ConfigError(f"the service needs {err.name!r}; install the extra: "
                          "pip install 'synthdata[service]'") from err
    return _create_app(settings)
