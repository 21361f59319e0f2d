"""The adapter: the only code that touches aiohttp's private internals.

aiohttp has no signal for releases and no public pool state, so the plugin hooks
a few private ``BaseConnector`` methods and reads private pool fields. Everything
version-dependent lives here, in small modules:

* :mod:`.internals`: the table of every private name used, with the aiohttp versions
  that have it and the telemetry that needs it, resolved at first use (never at
  import); a missing one switches off only that telemetry, with one warning;
* :mod:`.probe`: which aiohttp this is;
* :mod:`.attach`: where the plugin's state of a connector is kept;
* :mod:`.view`: read-only access to one connector's pool;
* :mod:`.classify`: why a release happened, and whether a failure was a timeout;
* :mod:`.hooks`: the hooked methods, and :mod:`.install`: where they go (aiohttp's
  classes for the instrumentor, the package's own connector subclasses);
* :mod:`.upgrade`: a WebSocket upgrade ends its lease.
"""
