"""The server's settings (:class:`ServeSettings`): where it listens, who may call it, what it shows, how long it
keeps conversations and how long a request may wait for the LLM. One pydantic model, read from the
``[server]`` table of ``convrec serve --config FILE.toml`` and overridden by the command's flags.

Imports nothing of FastAPI, so the command can check its settings (and fail with one line) before the web
stack is imported.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

TOKEN_ENV = "CONVREC_SERVE_TOKEN"  # the bearer token, when not given by --token (kept out of `ps` that way)

# Metadata fields of research-use-only origin (IMDb/TMDB-derived: plots, cast, writers, keywords; see the
# data mirror's README.md, "Licences"), withheld from every response when ``withhold_research_text``.
# Genres, the director or author, the year and the title stay: they are what a reason names, and facts of that
# kind come with every catalogue.
RESEARCH_TEXT_FIELDS = ("plot", "star", "writer", "keywords")


def is_loopback(host: str) -> bool:
    """Does ``host`` (an address or a name) listen on this machine only? "localhost" and 127.0.0.0/8, ::1."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


class ServeSettings(BaseModel):
    """How ``convrec serve`` serves (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", min_length=1, description="the address to listen on (loopback by default)")
    port: int = Field(8000, ge=0, le=65535, description="the port (0: a free one, printed at start)")
    token: SecretStr | None = Field(None, description=f"bearer token every /api call and /metrics must carry "
                                    f"(None: no auth); also ${TOKEN_ENV}")
    cors_origins: tuple[str, ...] = Field((), description="origins a browser may call the API from (empty: CORS off)")
    withhold_research_text: bool | None = Field(
        None, description="leave research-only item text (plots, cast, writers, keywords) out of every response; "
        "None: on unless the server listens on loopback only")
    retention_days: float | None = Field(30.0, gt=0, description="conversations not touched for this long are "
                                         "deleted (None: kept for ever)")
    purge_interval_s: float = Field(3600.0, gt=0, description="how often expired conversations are looked for")
    max_wait_s: float = Field(10.0, ge=0, description="how long a message may wait for a free turn slot (the LLM) "
                              "before it is answered 503 with Retry-After")
    session_wait_s: float = Field(60.0, ge=0, description="how long a request may wait for another request of the "
                                  "same session to finish before it is answered 503")
    turn_slots: int | None = Field(None, ge=1, description="turns answered at once; None: the LLM's max_concurrency, "
                                   "or the CPU count without an LLM")
    db: Path | None = Field(None, description="the SQLite file of the sessions; None: "
                            "$CONVREC_CACHE_DIR/serve/sessions.sqlite3")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins_as_tuple(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @property
    def withholds_research_text(self) -> bool:
        """The switch, decided: explicit, or on for any host beyond loopback."""
        if self.withhold_research_text is not None:
            return self.withhold_research_text
        return not is_loopback(self.host)

    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token is not None else None

    def db_path(self, cache_dir: Path) -> Path:
        return self.db if self.db is not None else cache_dir / "serve" / "sessions.sqlite3"


def token_from_env() -> str | None:
    value = os.environ.get(TOKEN_ENV, "")
    return value or None
