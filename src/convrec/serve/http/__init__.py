"""The HTTP API of ``convrec serve`` (FastAPI on uvicorn): :func:`convrec.serve.http.app.create_app` over one
engine and a SQLite session store. Its web stack is the optional extra ``convrec[serve]``: this package's
``__init__`` imports none of it, so :func:`check_extra` can say what to install before anything fails."""

from __future__ import annotations

import importlib

from convrec.errors import ConvrecError

EXTRA_MODULES = ("fastapi", "uvicorn", "prometheus_client")


class MissingExtraError(ConvrecError):
    """The packages of ``convrec[serve]`` are not installed."""


def check_extra() -> None:
    """Raise :class:`MissingExtraError` naming the missing packages and the install command."""
    missing = []
    for name in EXTRA_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingExtraError(f"the HTTP server needs {', '.join(missing)}, which are not installed",
                                hint="install them with: pip install 'convrec[serve]'")
