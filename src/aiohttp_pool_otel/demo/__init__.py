"""``aiohttp-pool-otel demo``: real local servers, a real session, the pool explained."""
