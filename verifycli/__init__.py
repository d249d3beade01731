"""verifycli: catch, check and keep Plivo Verify status callbacks."""

__version__ = "0.1.0"

__all__ = ["__version__"]
