"""Delivery beyond the configured sinks: store-backed webhook subscriptions."""
