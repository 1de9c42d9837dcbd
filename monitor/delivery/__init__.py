"""Delivering alerts to case officers: routing, payloads, signatures, retries, history."""
