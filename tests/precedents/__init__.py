"""Tests of accord/precedents/."""
