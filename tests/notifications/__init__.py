"""Tests of notifications/."""
