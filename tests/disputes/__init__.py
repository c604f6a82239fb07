"""Tests of accord/disputes/."""
