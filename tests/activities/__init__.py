"""Tests of activities/."""
