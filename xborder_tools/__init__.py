"""Tooling around the monitor: the demo, the telemetry simulator, the embedded broker and the
GeoIP fetch.

Not part of the service: the worker image is built without this package, and the monitor
imports it only when one of its commands runs. Its dependencies come with the `demo` extra.
"""
