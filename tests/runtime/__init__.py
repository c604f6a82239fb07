"""Tests of accord/runtime/."""
