"""GTE perpetual-futures market maker."""

__version__ = "0.1.0"
