"""Simulator fixtures (filled in by the Exmail simulator work)."""
