"""The pool timeline: a picture of what every connection of a pool did over time.

Spans come from Jaeger's query API (:mod:`.jaeger`) or, in the demo, straight from
the SDK (:mod:`.otel_spans`), in Jaeger's JSON shape either way; :mod:`.model` turns
them into rows (one per connection, one per lane of queued requests per host) and
:mod:`.svg` draws them. ``aiohttp-pool-otel timeline`` (:mod:`.cli`) ties them together.
"""
