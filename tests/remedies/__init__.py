"""Tests of accord/remedies/."""
