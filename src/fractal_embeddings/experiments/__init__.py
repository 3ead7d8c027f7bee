"""Experiments: each module is a config (its grid) + one function that writes run records."""

EXPERIMENTS = ("objective-study",)
