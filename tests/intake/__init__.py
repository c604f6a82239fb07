"""Tests of intake/."""
