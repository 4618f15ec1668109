"""dnsentinel: DNS threat detection as an event-streaming pipeline.

This root package holds only what every component shares: the one settings
model (:mod:`dnsentinel.settings`) and the shared exception types
(:mod:`dnsentinel.errors`). Components live in sub-packages mapped from the
repository's top-level folders (see ``pyproject.toml``).
"""

__version__ = "0.1.0"
