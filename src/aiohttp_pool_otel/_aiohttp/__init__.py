"""The adapter: the only code that touches aiohttp's private internals.

aiohttp has no signal for releases and no public pool state, so the plugin hooks
a few private ``BaseConnector`` methods and reads private pool fields. Everything
version-dependent lives here, in four small modules:

* :mod:`.probe`: which aiohttp this is, and which internals it has;
* :mod:`.view`: read-only access to one connector's pool;
* :mod:`.classify`: why a release happened, and whether a failure was a timeout;
* :mod:`.hooks`: the hooked methods, installed on aiohttp's classes by the
  instrumentor and defined on the package's own connector subclasses.
"""
