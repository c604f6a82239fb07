"""Accord: durable channel-conflict resolution."""
