"""Command line entry point: the only place that knows every part and wires them together."""
