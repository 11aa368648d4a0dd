"""Library cache warmer: CSV import, cron micro-batch warming, daily verification, dashboard."""

from .app import App, Isolate, build_app

__all__ = ["App", "Isolate", "build_app"]
