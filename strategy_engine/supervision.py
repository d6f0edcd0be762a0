"""The stack's process supervisor: supervisord, driven over its XML-RPC interface.

Every long-running process of ``strategy-engine up`` (Redis, MLflow, Prefect and its worker,
the dashboard, the cores, Prometheus, Alertmanager and the alert receiver) is a supervisord
*program*. supervisord starts it in its own process group, restarts it when it exits
unexpectedly (with a growing back-off and a bounded number of tries before it gives up and marks
it ``FATAL``), rotates its log under ``var/log/`` and stops the whole group on ``down``. This
module only writes supervisord's configuration and talks to it; it never signals a process
itself.

Layout under ``var/``: ``supervisor/supervisord.conf`` (the daemon), ``supervisor/programs/
<name>.conf`` (one per program, written when the program is first launched and included by the
daemon), ``run/supervisord.sock`` (the control socket, owner-only) and ``log/``. Program files
carry the environment of their process, secrets included, so the folder is owner-only and
supervisord runs with umask 077.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from core.adapters.private_files import write_private
from core.config import FrozenConfig, require
from core.errors import AdapterError, ConfigError

RUNNING_STATES = frozenset({"STARTING", "RUNNING", "BACKOFF"})
"""States in which supervisord holds the program up (BACKOFF: waiting to restart it)."""
FAILED_STATES = frozenset({"FATAL", "EXITED", "UNKNOWN"})
SOCKET_NAME = "supervisord.sock"
# AF_UNIX paths are limited to 108 bytes on Linux (104 on macOS).
MAX_SOCKET_PATH = 100
START_TIMEOUT_S = 15.0


class Program(FrozenConfig, frozen=True, kw_only=True):
    """One supervised process.

    Attributes
    ----------
    name : str
        The program's name (letters, digits, ``-`` and ``_``).
    argv : list of str
        The command; the first word an absolute path (supervisord does not use a shell).
    env : mapping
        Its whole environment (supervisord's own is not passed on).
    start_seconds : float
        How long it must stay up for a start to count as successful.
    start_retries : int
        Failed starts in a row before supervisord gives up (``FATAL``); a program that ran
        ``start_seconds`` and then crashed starts the count again, so a crash now and then is
        always restarted. supervisord waits 1, 2, 3, ... seconds between tries.
    stop_seconds : float
        How long SIGTERM has before SIGKILL.
    priority : int
        Start order (lower first); ``down`` stops in the reverse order.
    """

    name: str
    argv: list[str]
    env: Mapping[str, str] = msgspec.field(default_factory=dict)
    start_seconds: float = 1.0
    start_retries: int = 5
    stop_seconds: float = 20.0
    priority: int = 500

    def __post_init__(self) -> None:
        require(
            bool(self.name) and all(c.isalnum() or c in "-_" for c in self.name),
            f"a program name is letters, digits, - and _: {self.name!r}",
        )
        require(
            bool(self.argv) and os.path.isabs(self.argv[0]),
            f"{self.name}: the command must start with an absolute path",
        )


class Supervisor:
    """The supervisord of one ``var/`` folder.

    Parameters
    ----------
    var_dir : Path
        The stack's state folder.
    workdir : Path
        The programs' working directory (the repository).
    """

    def __init__(self, var_dir: Path, workdir: Path) -> None:
        self.var_dir = var_dir
        self.workdir = workdir
        self.conf_dir = var_dir / "supervisor"
        self.programs_dir = self.conf_dir / "programs"
        self.run_dir = var_dir / "run"
        self.log_dir = var_dir / "log"

    @property
    def conf_file(self) -> Path:
        return self.conf_dir / "supervisord.conf"

    @property
    def socket_path(self) -> Path:
        return self.run_dir / SOCKET_NAME

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "supervisord.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    # --- the daemon ---------------------------------------------------------------------------

    def running(self) -> bool:
        """Whether this folder's supervisord answers on its socket."""
        if not self.socket_path.exists():
            return False
        try:
            state = self._rpc().supervisor.getState()
        except (OSError, xmlrpc.client.Error):
            return False
        return isinstance(state, dict) and state.get("statename") == "RUNNING"

    def ensure_running(self, env: Mapping[str, str]) -> bool:
        """Start supervisord unless it runs; return whether this call started it.

        ``env`` becomes the daemon's environment; each program gets its own on top of nothing
        (see :meth:`launch`).

        Raises
        ------
        AdapterError
            If the daemon does not answer within a few seconds (its log is named).
        """
        if self.running():
            return False
        for folder in (self.conf_dir, self.programs_dir, self.run_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # Program files hold their processes' secrets; the socket controls every process.
        self.conf_dir.chmod(0o700)
        self.programs_dir.chmod(0o700)
        self.run_dir.chmod(0o700)
        if len(str(self.socket_path)) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"the supervisor's socket path {self.socket_path} is longer than a Unix socket "
                f"allows ({MAX_SOCKET_PATH} bytes); set STRATEGY_ENGINE_VAR_DIR to a shorter "
                "folder"
            )
        self.socket_path.unlink(missing_ok=True)  # left by a daemon that was killed
        write_private(self.conf_file, self._daemon_conf())
        log = self.log_file("supervisord")
        # supervisord forks into the background once it has read its configuration; this
        # call returns then, or with its error if the configuration is wrong.
        done = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf_file)],
            cwd=self.workdir, env=dict(env), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise AdapterError(
                f"supervisord did not start (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-300:]}; see {log}"
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.running():
            if time.monotonic() > deadline:
                raise AdapterError(f"supervisord did not answer on {self.socket_path}; see {log}")
            time.sleep(0.1)
        return True

    def shutdown(self, timeout: float = 60.0) -> bool:
        """Stop every program (highest priority number first) and then supervisord.

        Returns whether a daemon was running.
        """
        if not self.running():
            return False
        pid = self._daemon_pid()
        with contextlib.suppress(OSError, xmlrpc.client.Error):
            self._rpc().supervisor.shutdown()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pid is None or not _alive(pid):
                break
            time.sleep(0.1)
        self.socket_path.unlink(missing_ok=True)
        return True

    # --- programs -----------------------------------------------------------------------------

    def launch(self, program: Program) -> int:
        """Define ``program`` (replacing an older definition) and start it; return its pid.

        Raises
        ------
        AdapterError
            If supervisord cannot spawn it (the reason and the log are named).
        """
        path = self.programs_dir / f"{program.name}.conf"
        write_private(path, self._program_conf(program))
        rpc = self._rpc()
        added, changed, _removed = rpc.supervisor.reloadConfig()[0]
        if program.name in changed:
            with contextlib.suppress(xmlrpc.client.Fault):
                rpc.supervisor.stopProcess(program.name, True)
            rpc.supervisor.removeProcessGroup(program.name)
        if program.name in added or program.name in changed:
            rpc.supervisor.addProcessGroup(program.name)
        try:
            rpc.supervisor.startProcess(program.name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise AdapterError(
                    f"{program.name} did not start: {fault.faultString}; "
                    f"see {self.log_file(program.name)}"
                ) from None
        info = self.info(program.name) or {}
        return int(info.get("pid") or 0)

    def start(self, name: str) -> int | None:
        """Start ``name`` again as it was last defined (after :meth:`stop`); return its pid."""
        try:
            self._rpc().supervisor.startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise AdapterError(f"{name} did not start: {fault.faultString}") from None
        return self.pid(name)

    def info(self, name: str) -> dict[str, Any] | None:
        """supervisord's record of ``name`` (``statename``, ``pid``, ``start``, ``description``,
        ``exitstatus``, ...), or None when the daemon or the program is unknown."""
        if not self.socket_path.exists():
            return None
        try:
            info = self._rpc().supervisor.getProcessInfo(name)
        except (OSError, xmlrpc.client.Error):
            return None
        return info if isinstance(info, dict) else None

    def programs(self) -> list[dict[str, Any]]:
        """Every program supervisord knows, with its record (empty when it does not run)."""
        if not self.socket_path.exists():
            return []
        try:
            infos = self._rpc().supervisor.getAllProcessInfo()
        except (OSError, xmlrpc.client.Error):
            return []
        return [i for i in infos if isinstance(i, dict)] if isinstance(infos, list) else []

    def pid(self, name: str) -> int | None:
        """The pid of ``name`` while supervisord keeps it running, else None."""
        info = self.info(name)
        if info is None or info.get("statename") not in ("STARTING", "RUNNING"):
            return None
        pid = int(info.get("pid") or 0)
        return pid if pid > 0 else None

    def stop(self, name: str) -> str:
        """Stop ``name`` (SIGTERM to its group, SIGKILL after its stop time); say what happened."""
        info = self.info(name)
        if info is None or info.get("statename") not in RUNNING_STATES:
            return "not running"
        try:
            self._rpc().supervisor.stopProcess(name, True)
        except xmlrpc.client.Fault as fault:
            return f"not running ({fault.faultString})"
        return f"stopped (pid {info.get('pid')})"

    # --- configuration ------------------------------------------------------------------------

    def _daemon_conf(self) -> str:
        return "\n".join(
            [
                "; Written by strategy-engine up; rewritten on every start of the daemon.",
                "[unix_http_server]",
                f"file={_escape(str(self.socket_path))}",
                "chmod=0700",
                "",
                "[supervisord]",
                f"logfile={_escape(str(self.log_file('supervisord')))}",
                "logfile_maxbytes=10MB",
                "logfile_backups=5",
                f"pidfile={_escape(str(self.pid_file))}",
                f"directory={_escape(str(self.workdir))}",
                f"childlogdir={_escape(str(self.log_dir))}",
                "identifier=strategy-engine",
                "umask=077",
                "nodaemon=false",
                "",
                "[rpcinterface:supervisor]",
                "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
                "",
                "[supervisorctl]",
                f"serverurl=unix://{_escape(str(self.socket_path))}",
                "",
                "[include]",
                f"files={_escape(str(self.programs_dir))}/*.conf",
                "",
            ]
        )

    def _program_conf(self, program: Program) -> str:
        log = _escape(str(self.log_file(program.name)))
        environment = ",".join(
            f'{name}="{_env_value(name, value)}"' for name, value in sorted(program.env.items())
        )
        return "\n".join(
            [
                f"[program:{program.name}]",
                f"command={_escape(shlex.join(program.argv))}",
                f"directory={_escape(str(self.workdir))}",
                f"environment={environment}",
                "autostart=false",
                # Restarted whenever it exits, even with status 0: every program of the stack
                # is meant to run until `down`.
                "autorestart=true",
                f"startsecs={program.start_seconds:g}",
                f"startretries={program.start_retries}",
                "stopsignal=TERM",
                f"stopwaitsecs={program.stop_seconds:g}",
                # The whole process group: uvicorn workers and flow-run subprocesses too.
                "stopasgroup=true",
                "killasgroup=true",
                f"priority={program.priority}",
                "redirect_stderr=true",
                f"stdout_logfile={log}",
                "stdout_logfile_maxbytes=50MB",
                "stdout_logfile_backups=5",
                "",
            ]
        )

    def _daemon_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _rpc(self) -> Any:
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.socket_path}")
        # The host part is ignored: the transport talks to the Unix socket.
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def _escape(text: str) -> str:
    """supervisord expands ``%(name)s`` in its values: a literal ``%`` is written ``%%``."""
    return text.replace("%", "%%")


def _env_value(name: str, value: str) -> str:
    if any(c in value for c in '"\n\r\0') or not name.replace("_", "").isalnum():
        raise ConfigError(f"environment variable {name} cannot be passed to supervisord")
    return _escape(value)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); only our own children can be zombies here, and the
    # daemon is not one (it double-forks).
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    return True
