"""The Strategy Engine's HTTP API (FastAPI): read, stream, act, ingest; see docs/integration.md."""

from strategy_engine.api.app import create_app

__all__ = ["create_app"]
