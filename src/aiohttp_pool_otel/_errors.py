"""Telemetry failures: logged once per place, never raised into aiohttp."""

from __future__ import annotations

import logging

log = logging.getLogger("aiohttp_pool_otel")

_reported: set[str] = set()


def report_internal_error(where: str) -> None:
    """Log the exception being handled, once per ``where``; never raise.

    Call it only on the loop thread or in user code: logging takes locks, so a
    finalizer must never get here.
    """
    try:
        if where not in _reported:
            _reported.add(where)
            log.exception("aiohttp-pool-otel: telemetry failed in %s (ignored)", where)
    except Exception:  # pragma: no cover - logging itself failed
        pass


def warn_once(where: str, message: str, *args: object) -> None:
    """Log a warning about the user's code once per ``where`` (loop thread)."""
    if where not in _reported:
        _reported.add(where)
        log.warning(message, *args)
