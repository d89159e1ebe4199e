"""SCRIBE-RM: skill-rubric process rewards served over HTTP."""

__version__ = "0.1.0"
