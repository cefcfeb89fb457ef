"""vizvm: a terminal app that makes virtualization internals visible."""

__version__ = "0.1.0"
