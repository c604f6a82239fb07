"""Tests of accord/playbooks/."""
