"""Errors a function raises to tell the runtime how to treat a failure."""

from __future__ import annotations


class PermanentError(Exception):
    """The event cannot succeed however often it is retried: dead-letter it at once.

    Raise it for a rejection the domain decided (an unknown SKU mapping, a rule violation), so the
    runtime does not spend the retry budget on it. Anything else is treated as transient.
    """
