"""Tests of accord/rules/."""
