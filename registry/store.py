"""Where the MLflow registry lives: tracking URI, artifact root and the client.

By default the store is ``<repo>/mlflow/`` (SQLite ``mlflow.db`` plus ``artifacts/``), overridable
with ``STRATEGY_ENGINE_MLFLOW_DIR``; ``MLFLOW_TRACKING_URI``, when set, replaces the SQLite URI
(a tracking server for example). Every store carries its own :class:`mlflow.MlflowClient`, so
tests can run several stores side by side without touching MLflow's global state.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from mlflow.entities import Experiment
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from core.errors import AdapterError

MLFLOW_DIR_ENV = "STRATEGY_ENGINE_MLFLOW_DIR"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_EXPERIMENT = "strategy-registry"


def default_root() -> Path:
    """Return the store folder: ``$STRATEGY_ENGINE_MLFLOW_DIR`` or ``<repo>/mlflow``."""
    override = os.environ.get(MLFLOW_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parents[1] / "mlflow"


def _is_local(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


class MlflowStore:
    """One MLflow tracking and registry store.

    Parameters
    ----------
    root
        Folder holding ``mlflow.db`` and ``artifacts/``; defaults to :func:`default_root`.
    tracking_uri
        Explicit tracking URI; defaults to ``$MLFLOW_TRACKING_URI`` or the SQLite file in ``root``.
    """

    def __init__(self, root: Path | None = None, *, tracking_uri: str | None = None) -> None:
        self.root = (root or default_root()).resolve()
        env_uri = os.environ.get(TRACKING_URI_ENV) if root is None else None
        self.tracking_uri = tracking_uri or env_uri or f"sqlite:///{self.root / 'mlflow.db'}"
        self.artifact_root = self.root / "artifacts"
        self._client: MlflowClient | None = None
        self._experiments: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"MlflowStore(tracking_uri={self.tracking_uri!r})"

    @property
    def client(self) -> MlflowClient:
        """The store's own client (tracking and registry on the same URI)."""
        if self._client is None:
            if self.tracking_uri.startswith("sqlite:"):
                self.root.mkdir(parents=True, exist_ok=True)
            self._client = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
            )
        return self._client

    def experiment_id(self, name: str = DEFAULT_EXPERIMENT) -> str:
        """Return the id of experiment ``name``, creating it with an explicit artifact location.

        An explicit location keeps artifacts under ``root/artifacts`` (MLflow would otherwise
        write a ``./mlruns`` folder in the working directory); a remote tracking server keeps
        its own artifact store.
        """
        if name in self._experiments:
            return self._experiments[name]
        client = self.client
        experiment: Experiment | None = client.get_experiment_by_name(name)
        if experiment is None:
            location = None
            if _is_local(self.tracking_uri):
                location = (self.artifact_root / name).as_uri()
            try:
                experiment_id = client.create_experiment(name, artifact_location=location)
            except MlflowException as exc:
                raise AdapterError(f"cannot create MLflow experiment {name!r}: {exc}") from exc
        else:
            experiment_id = experiment.experiment_id
        self._experiments[name] = experiment_id
        return experiment_id

    def ui_command(self, host: str = "127.0.0.1", port: int = 5000) -> str:
        """Return the shell command that serves the MLflow UI over this store on loopback."""
        args = [
            "mlflow",
            "server",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            self.tracking_uri,
            "--artifacts-destination",
            self.artifact_root.as_uri(),
        ]
        return "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false " + shlex.join(args)
