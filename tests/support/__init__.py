"""What several test directories share: built GeoIP databases, the hand-written scenario,
the bundled rule pack, record builders, brokers and the worker harness (no tests here)."""
