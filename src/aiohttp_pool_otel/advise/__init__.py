"""``aiohttp-pool-otel advise``: pool-sizing advice from the service's own metrics.

One module per job: :mod:`.prometheus` talks to Prometheus's HTTP API, :mod:`.queries`
turns the service's series into :class:`~.model.HostEvidence`, :mod:`.model` does the
arithmetic (Little's law with headroom), :mod:`.findings` names what is wrong besides
the size, :mod:`.render` prints text or JSON and :mod:`.cli` wires the options.
"""
