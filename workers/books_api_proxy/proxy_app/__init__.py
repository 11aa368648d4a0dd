"""books_api_proxy: multi-provider book search with merged results and two cache tiers."""

from .app import App, build_app
from .isolate import Isolate

__all__ = ["App", "Isolate", "build_app"]
