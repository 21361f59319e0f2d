"""The package version, the single source read by the build and the telemetry scope."""

__version__ = "0.1.0"
