"""jghub — the exchange hub of a provincial 互联网+监管 (Internet + Supervision) system."""

__version__ = "0.1.0"
__all__ = ["__version__"]
