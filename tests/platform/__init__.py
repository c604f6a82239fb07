"""Tests of accord/platform/."""
