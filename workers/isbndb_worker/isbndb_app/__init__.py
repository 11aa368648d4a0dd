"""The ISBNdb leaf worker: author bibliographies, book and bulk look-ups (see app.App)."""

from .app import App, build_app
from .guard_object import KeyGuardObject
from .isolate import Isolate

__all__ = ["App", "Isolate", "KeyGuardObject", "build_app"]
