"""Reading stores for people: checking a store for damaged runs (``verify``)."""

from fluidml.results.verify import verify

__all__ = ["verify"]
