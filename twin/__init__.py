"""twin: a structure-function digital-twin framework for the visual cortex."""

__version__ = "0.1.0"
