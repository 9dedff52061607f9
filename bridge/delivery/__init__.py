"""Delivery-side policy: what happens to an event between the outbox and a sink."""
