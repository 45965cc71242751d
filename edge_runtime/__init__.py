"""edge-runtime: an agent that learns at every step, while it acts, from what its body feels."""
__version__ = "0.1.0"
