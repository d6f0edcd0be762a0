"""The stateful core: model types, strategies, execution, tracking and the event engine.

The core imports neither ``registry`` nor ``pipelines``; the outer layers hand it
implementations of the small protocols in :mod:`core.ports`.
"""
