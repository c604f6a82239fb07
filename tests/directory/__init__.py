"""Tests of accord/directory/."""
