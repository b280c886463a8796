"""convrec: conversational recommendation with honest evaluation."""

__version__ = "0.1.0"
