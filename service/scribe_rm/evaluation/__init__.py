"""Offline evaluations: routing accuracy (and, later, judge consistency)."""
