"""The real-browser tests' fixtures (defined in browser_world.py, beside the helpers the tests import)."""

from browser_world import base_url, browser, page, world  # noqa: F401  (fixtures)
