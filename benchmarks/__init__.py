"""Performance benchmarks of aiohttp-pool-otel against bare aiohttp and the contrib instrumentation.

Not part of the unit test run. Entry points (from the repository root)::

    python -m benchmarks.run       # end-to-end, interleaved paired rounds: table, --json, --check
    python -m benchmarks.hotpath   # socket-free connect()+release() micro-benchmark
    python -m benchmarks.soak      # RSS and metric data points over many requests

Every server binds 127.0.0.1 only, every loop is bounded in count and time, and every
subprocess has a timeout.
"""
