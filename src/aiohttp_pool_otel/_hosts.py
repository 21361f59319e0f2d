"""Host series and the ``max_hosts`` budget.

The SDK keeps every attribute set an instrument ever saw, histograms and
observables alike, for the life of the MeterProvider. So a host series, once
given, is kept for the connector's life: the first ``max_hosts`` hosts get their
own series and every later one is folded into ``server.address="_OTHER"``. That is
what bounds every instrument to ``max_hosts + 1`` host series.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from . import semconv as sc
from ._records import Attributes, HostId, HostRecord


class HostBook:
    """The host records of one connector: at most ``max_hosts`` plus ``_OTHER``."""

    def __init__(
        self,
        max_hosts: int,
        pool_attributes: Attributes,
        identify: Callable[[Any], HostId],
        waits_seen: bool = True,
    ) -> None:
        self._max_hosts = max_hosts
        self._waits_seen = waits_seen
        self._pool_attributes = pool_attributes
        self._identify = identify
        self._hosts: dict[HostId, HostRecord] = {}
        # aiohttp's pool keys differ by fields we never show (ssl context, proxy):
        # a key -> record cache spares identify() on every lookup. Bounded: cleared
        # when it grows past a multiple of the budget.
        self._by_key: dict[Any, HostRecord] = {}
        self.other: Optional[HostRecord] = None

    def for_key(self, key: Any) -> HostRecord:
        """The record of aiohttp pool key ``key``."""
        record = self._by_key.get(key)
        if record is None:
            record = self.for_identity(self._identify(key))
            if len(self._by_key) >= 4 * self._max_hosts:
                self._by_key.clear()
            self._by_key[key] = record
        return record

    def for_identity(self, identity: HostId) -> HostRecord:
        """The record of ``(host, port, scheme)``, or ``_OTHER`` past the budget."""
        record = self._hosts.get(identity)
        if record is not None:
            return record
        if len(self._hosts) >= self._max_hosts:
            return self._other()
        record = self._hosts[identity] = HostRecord(
            identity, self._attributes(identity), self._waits_seen
        )
        return record

    def peek(self, key: Any) -> Optional[HostRecord]:
        """The record of ``key`` if it has one; creates nothing (for the reader thread,
        which must not race the loop thread into creating two records of one host)."""
        record = self._by_key.get(key)
        if record is None:
            record = self._hosts.get(self._identify(key))
            if record is None and len(self._hosts) >= self._max_hosts:
                record = self.other
        return record

    def records(self) -> list[HostRecord]:
        """Every record, ``_OTHER`` last (any thread: a copy)."""
        records = list(self._hosts.copy().values())
        if self.other is not None:
            records.append(self.other)
        return records

    def _attributes(self, identity: HostId) -> Attributes:
        host, port, scheme = identity
        attributes: Attributes = {sc.SERVER_ADDRESS: host, sc.URL_SCHEME: scheme}
        if port is not None:
            attributes[sc.SERVER_PORT] = port
        attributes.update(self._pool_attributes)
        return attributes

    def _other(self) -> HostRecord:
        if self.other is None:
            attributes: Attributes = {sc.SERVER_ADDRESS: sc.OTHER_HOST}
            attributes.update(self._pool_attributes)
            self.other = HostRecord((sc.OTHER_HOST, None, ""), attributes, self._waits_seen)
        return self.other
