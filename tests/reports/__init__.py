"""Tests of accord/reports/."""
