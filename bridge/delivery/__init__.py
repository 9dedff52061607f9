"""Delivery-side policy and destinations beyond the configured sinks: preferences and
holds (the notification page), store-backed webhook subscriptions."""
