"""Settings of the proxy, parsed from env vars (pure: no I/O beyond reading vars)."""

from __future__ import annotations

from dataclasses import dataclass

from bookmeta import WorkerEnv, int_var

MAX_RESULTS_LIMIT = 40  # Google Books' own ceiling for maxResults
# Every var `load_settings` reads (a test pins it): their raw values key the isolate's settings.
VAR_NAMES = (
    "CACHE_HOT_TTL",
    "CACHE_COLD_TTL",
    "MAX_RESULTS_DEFAULT",
    "RATE_LIMIT_MS",
    "GOOGLE_BOOKS_BASE_URL",
    "OPEN_LIBRARY_BASE_URL",
    "CONTACT_EMAIL",
    "CORS_ALLOWED_ORIGINS",
    "PROVIDER_TIMEOUT_MS",
)


@dataclass(frozen=True, slots=True)
class Settings:
    """What the proxy reads from its vars (see wrangler.toml.d/books_api_proxy.toml)."""

    hot_ttl_s: int = 3600
    cold_ttl_s: int = 604_800
    negative_ttl_s: int = 300
    max_results_default: int = MAX_RESULTS_LIMIT
    rate_limit_ms: int = 100
    google_base_url: str = "https://www.googleapis.com/books/v1"
    openlibrary_base_url: str = "https://openlibrary.org"
    contact_email: str = ""
    cors_origins: tuple[str, ...] = ("*",)
    provider_timeout_s: float = 8.0


def parse_origins(raw: str) -> tuple[str, ...]:
    """``CORS_ALLOWED_ORIGINS``: ``*`` or a comma-separated list of origins (trailing ``/`` cut)."""
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    return ("*",) if not origins or "*" in origins else origins


def load_settings(env: WorkerEnv) -> Settings:
    """Read the vars, with the defaults of ``Settings``.

    Raises:
        ConfigError: a numeric var is malformed (a deployment error; ``name`` is the var).
    """
    default = Settings()
    max_default = int_var(env, "MAX_RESULTS_DEFAULT", default.max_results_default, minimum=1)
    return Settings(
        hot_ttl_s=int_var(env, "CACHE_HOT_TTL", default.hot_ttl_s, minimum=60),
        cold_ttl_s=int_var(env, "CACHE_COLD_TTL", default.cold_ttl_s, minimum=60),
        negative_ttl_s=default.negative_ttl_s,
        max_results_default=min(max_default, MAX_RESULTS_LIMIT),
        rate_limit_ms=int_var(env, "RATE_LIMIT_MS", default.rate_limit_ms, minimum=0),
        google_base_url=env.var("GOOGLE_BOOKS_BASE_URL", default.google_base_url).rstrip("/"),
        openlibrary_base_url=env.var("OPEN_LIBRARY_BASE_URL", default.openlibrary_base_url).rstrip(
            "/"
        ),
        contact_email=env.var("CONTACT_EMAIL", default.contact_email).strip(),
        cors_origins=parse_origins(env.var("CORS_ALLOWED_ORIGINS", "*")),
        provider_timeout_s=int_var(env, "PROVIDER_TIMEOUT_MS", 8000, minimum=1) / 1000.0,
    )


def fallback_settings(env: WorkerEnv) -> Settings:
    """What the proxy runs with while a var is malformed: defaults, with CORS still as set.

    Only ``/health``, ``/metrics`` and CORS preflights are served then (every other
    operation answers ``500 config_error``); ``CORS_ALLOWED_ORIGINS`` cannot be malformed,
    so a restricted list stays restricted.
    """
    return Settings(cors_origins=parse_origins(env.var("CORS_ALLOWED_ORIGINS", "*")))
