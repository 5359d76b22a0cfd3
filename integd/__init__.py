"""integd: the Integration Domain daemon (see DESIGN.md in the platform's shared documents)."""

__version__ = "0.1.0"
