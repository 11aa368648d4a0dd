"""Library cache warmer: CSV import, queue warming, cron re-drive, daily verification, dashboard."""

from .app import App, Isolate, build_app
from .job_object import LibraryJobObject

__all__ = ["App", "Isolate", "LibraryJobObject", "build_app"]
