"""Temporal workflows: one DisputeWorkflow per dispute."""
