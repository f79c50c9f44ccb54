"""infersight's exporter: scrape LLM engines, normalize their metrics into one schema, serve them."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("infersight")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
