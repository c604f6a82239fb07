"""Tests of accord/cli/."""
