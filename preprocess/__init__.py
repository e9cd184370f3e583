"""sonomap's core: recordings -> clips -> spectrograms -> sprites -> features -> reduced maps."""

__version__ = "0.1.0"
