"""Ingest a drop folder: new bar files pass the data gate before any retrain can read them.

The inbox (default ``<var>/inbox``, or ``$STRATEGY_ENGINE_INBOX``) has one folder per data set::

    inbox/<dataset>/<SYMBOL>.csv              a new file: one symbol's bars, CSV or Parquet
    inbox/<dataset>/<SYMBOL>.<anything>.csv   (the symbol is the name up to its first dot)
    inbox/<dataset>/done/<stamp>-<name>       accepted, beside <stamp>-<name>.report.json
    inbox/<dataset>/rejected/<stamp>-<name>   refused, beside a report naming the failed rules

A producer writes under a name that starts with ``.`` or ends in ``.part`` or ``.tmp`` and
renames the file when it is complete; such names are left alone until then.

Each file is copied (at most ``max_file_bytes``, never through a symbolic link) into a private
folder, parsed by the data set's own bar loader, and gated by the bars suite of Great
Expectations plus two rules of its own: the loader rejected no row, and every row is later than
the stored ones or equal to a stored row (so a re-ingested file changes nothing, and history is
never rewritten). Only then are the new rows appended to the symbol's file under
:func:`core.data.datasets.ingested_root`, which :func:`core.data.datasets.load_bars` reads after
the shipped file; the write is a temporary file renamed over the old one, so a reader sees the
old rows or the new ones, never a half-written file.

This is an ingestion boundary: nothing a file holds makes it raise. Every file ends as an
accepted or a rejected outcome, logged (events ``ingest_accepted``, ``ingest_rejected``) and,
when rejected, counted as a ``gate_failed`` learning event of ``ingest.<dataset>``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow

from core.data.datasets import (
    DATASETS,
    Dataset,
    get_dataset,
    ingested_bars_path,
    ingested_root,
    load_symbol_bars,
)
from core.data.loaders import BAR_COLUMNS, read_bars_frame
from core.errors import ConfigError, DataError
from pipelines.learning_counts import count_learning_event
from pipelines.validation import ExpectationResult, count_rejected_rows, validate_bars

INBOX_ENV = "STRATEGY_ENGINE_INBOX"
MAX_FILE_BYTES = 64 * 1024 * 1024
"""The largest file taken (for Parquet, also its uncompressed size); a larger one is refused."""
SUFFIXES = (".csv", ".parquet")
PENDING_SUFFIXES = (".part", ".tmp")
DONE, REJECTED = "done", "rejected"
REPORT_SUFFIX = ".report.json"
STORE_RULE = "rows later than the stored ones, or equal to stored rows"
LOCK_FILE = ".ingest.lock"
# Two float spellings of one price (the shipped text and its re-written form) may differ in
# the last bit: equal within this relative tolerance is the same stored value.
SAME_VALUE_RTOL = 1e-12
MAX_EXAMPLES = 5

log = logging.getLogger(__name__)


def default_inbox() -> Path:
    """Return ``$STRATEGY_ENGINE_INBOX`` if set, else ``inbox/`` in the run-time folder."""
    override = os.environ.get(INBOX_ENV)
    if override:
        return Path(override).expanduser()
    var = os.environ.get("STRATEGY_ENGINE_VAR_DIR") or Path(__file__).resolve().parents[1] / "var"
    return Path(var).expanduser() / "inbox"


@dataclass
class FileOutcome:
    """What became of one dropped file."""

    file: str
    dataset: str
    accepted: bool
    reason: str
    symbol: str = ""
    rows: int = 0
    new_rows: int = 0
    already_stored: int = 0
    moved_to: str = ""
    report_file: str = ""
    stored_in: str = ""
    failed_expectations: list[str] = field(default_factory=list)
    gate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "dataset": self.dataset,
            "symbol": self.symbol,
            "accepted": self.accepted,
            "reason": self.reason,
            "rows": self.rows,
            "new_rows": self.new_rows,
            "already_stored": self.already_stored,
            "stored_in": self.stored_in,
            "moved_to": self.moved_to,
            "report_file": self.report_file,
            "failed_expectations": list(self.failed_expectations),
            "gate": self.gate,
        }


class Refused(Exception):
    """A file is refused before its rows are gated (its type, size, name or bytes)."""


def ingest_inbox(
    inbox: str | Path | None = None,
    datasets: Sequence[str] | None = None,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> dict[str, Any]:
    """Ingest every new file of the inbox's data set folders (or only of ``datasets``).

    Parameters
    ----------
    inbox
        The drop folder (default :func:`default_inbox`); created if missing.
    datasets
        Data set folders to look at; all of the inbox's folders if None.
    max_file_bytes
        The largest file taken; a larger one is rejected unread.

    Returns
    -------
    dict
        ``inbox``, ``store`` (where accepted rows go), ``files`` (one outcome per file:
        ``accepted``, ``reason``, ``new_rows``, ``moved_to``, ``report_file``,
        ``failed_expectations``, ...), and the counts ``accepted``, ``rejected``, ``new_rows``.

    Raises
    ------
    ConfigError
        If ``max_file_bytes`` is not a positive integer, a named data set is unknown, or the
        inbox is not a folder.
    """
    if isinstance(max_file_bytes, bool) or not isinstance(max_file_bytes, int):
        raise ConfigError(f"max_file_bytes must be a positive integer, was {max_file_bytes!r}")
    if max_file_bytes <= 0:
        raise ConfigError(f"max_file_bytes must be a positive integer, was {max_file_bytes!r}")
    root = Path(inbox).expanduser() if inbox else default_inbox()
    for name in datasets or ():
        try:
            get_dataset(name)
        except DataError as exc:
            raise ConfigError(str(exc)) from None
    root.mkdir(parents=True, exist_ok=True)
    if root.is_symlink() or not root.is_dir():
        raise ConfigError(f"the inbox {root} must be a folder, not a link or a file")
    for name in datasets or ():
        (root / name).mkdir(exist_ok=True)
    store = ingested_root()
    outcomes: list[FileOutcome] = []
    with _store_lock(store):
        for folder in _dataset_folders(root, datasets):
            outcomes.extend(_ingest_folder(folder, max_file_bytes))
    accepted = [o for o in outcomes if o.accepted]
    return {
        "inbox": str(root),
        "store": str(store),
        "files": [o.to_dict() for o in outcomes],
        "accepted": len(accepted),
        "rejected": len(outcomes) - len(accepted),
        "new_rows": sum(o.new_rows for o in accepted),
    }


@flow(name="ingest-drop-folder", log_prints=False)
def ingest_drop_folder(
    inbox: str | None = None,
    datasets: list[str] | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> dict[str, Any]:
    """Ingest the drop folder once (see :func:`ingest_inbox`); rejected files are outcomes,
    not failures, so the run completes and reports them."""
    return ingest_inbox(inbox, datasets, max_file_bytes=max_file_bytes)


# --- the folders -------------------------------------------------------------------------------


@contextlib.contextmanager
def _store_lock(store: Path) -> Iterator[None]:
    """One ingestion at a time (a scheduled run and one by hand would race on the files)."""
    store.mkdir(parents=True, exist_ok=True)
    with (store / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _dataset_folders(root: Path, datasets: Sequence[str] | None) -> list[Path]:
    names = sorted(datasets) if datasets else sorted(p.name for p in root.iterdir())
    folders = []
    for name in names:
        folder = root / name
        if name.startswith(".") or not folder.is_dir():
            continue
        if folder.is_symlink():
            log.warning(
                f"ingest: {folder} is a symbolic link; its files are not read",
                extra={"event": "ingest_folder_skipped", "folder": str(folder)},
            )
            continue
        folders.append(folder)
    return folders


def _ingest_folder(folder: Path, max_file_bytes: int) -> list[FileOutcome]:
    try:
        entry: Dataset | None = get_dataset(folder.name)
    except DataError:
        entry = None
    outcomes = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if name in (DONE, REJECTED) and path.is_dir() and not path.is_symlink():
            continue
        if name.startswith(".") or name.endswith(PENDING_SUFFIXES):
            continue  # still being written, by the producer's convention
        outcome = _ingest_one(path, _shown(folder.name), entry, max_file_bytes)
        _settle(path, outcome)
        outcomes.append(outcome)
    return outcomes


# --- one file ----------------------------------------------------------------------------------


def _ingest_one(
    path: Path, dataset: str, entry: Dataset | None, max_file_bytes: int
) -> FileOutcome:
    """Decide one file; nothing it holds raises past here."""
    outcome = FileOutcome(file=_shown(path.name), dataset=dataset, accepted=False, reason="")
    try:
        if entry is None:
            raise Refused(f"unknown data set '{dataset}' (the inbox's folders are data set names)")
        if not entry.bars_pattern:
            raise Refused(f"ingest takes per-symbol bar sets; '{dataset}' holds {entry.kind} data")
        outcome.symbol = _symbol_of(path.name, entry)
        with tempfile.TemporaryDirectory(prefix="se-ingest-") as work:
            # Named by symbol and type alone: the loader's messages never carry the raw name.
            suffix = next(x for x in SUFFIXES if path.name.lower().endswith(x))
            copy = _private_copy(path, Path(work) / f"{outcome.symbol}{suffix}", max_file_bytes)
            csv = _as_csv(copy, max_file_bytes)
            _gate_and_store(csv, entry, outcome)
    except (Refused, DataError) as exc:
        outcome.reason = str(exc)
    except Exception as exc:  # the boundary: any surprise is this file's rejection
        outcome.reason = f"unreadable file ({type(exc).__name__}: {exc})"[:500]
    if not outcome.accepted and not outcome.failed_expectations:
        outcome.failed_expectations = ["file readable as bars"]
    return outcome


def _symbol_of(name: str, entry: Dataset) -> str:
    suffix = next((s for s in SUFFIXES if name.lower().endswith(s)), None)
    if suffix is None:
        raise Refused(f"unsupported file type: '{_shown(name)}' (expected {' or '.join(SUFFIXES)})")
    symbol = name.split(".", 1)[0]
    if symbol not in entry.tickers:
        raise Refused(
            f"'{_shown(name)}' names symbol '{_shown(symbol)}', which data set '{entry.name}' "
            "does not list "
            f"(e.g. {', '.join(entry.tickers[:5])})"
        )
    return symbol


def _shown(name: str) -> str:
    """A file name as logs and reports show it: control characters and undecodable bytes
    escaped, so a name can neither forge a log line nor break a JSON encoder."""
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")


def _private_copy(path: Path, copy: Path, max_file_bytes: int) -> Path:
    """Copy ``path`` to ``copy`` through one descriptor opened without following links.

    Checking and reading the same open file means a file swapped for a link (or grown) after
    the check is still never read through the link, nor past the bound.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if path.is_symlink():
            raise Refused("a symbolic link, not a regular file: not followed") from None
        raise Refused(f"cannot open: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Refused("not a regular file")
        if info.st_size > max_file_bytes:
            raise Refused(f"file too large: {info.st_size} bytes (at most {max_file_bytes})")
        data = source.read(max_file_bytes + 1)
    if len(data) > max_file_bytes:
        raise Refused(f"file too large: more than {max_file_bytes} bytes")
    copy.write_bytes(data)
    return copy


def _as_csv(copy: Path, max_file_bytes: int) -> Path:
    """Return a CSV of the file for the bar loader (a Parquet file is written out as one)."""
    if not copy.name.lower().endswith(".parquet"):
        return copy
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(copy).metadata
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if unpacked > max_file_bytes:
        raise Refused(
            f"Parquet data too large: {unpacked} bytes unpacked (at most {max_file_bytes})"
        )
    frame = pd.read_parquet(copy)
    csv = copy.with_name(copy.name[: -len(".parquet")] + ".csv")
    frame.to_csv(csv, index=False)
    return csv


def _gate_and_store(csv: Path, entry: Dataset, outcome: FileOutcome) -> None:
    """Gate the file's rows; on success append the new ones to the store."""
    loaded = read_bars_frame(csv, outcome.symbol, tz=entry.timezone)
    frame = loaded.frame
    outcome.rows = len(frame)
    name = f"ingest:{entry.name}:{outcome.symbol}"
    report = validate_bars(frame, name=name)
    rejected = [
        {"symbol": outcome.symbol, "line": r.line, "reason": r.reason, "raw": r.raw[:200]}
        for r in loaded.rejected
    ]
    report = count_rejected_rows(report, rejected, allowed=0)
    stored = load_symbol_bars(entry.name, outcome.symbol).frame
    new, same, store_rule = _against_store(frame, stored)
    report = replace(
        report, success=report.success and store_rule.success, results=[*report.results, store_rule]
    )
    outcome.gate = report.to_dict()
    outcome.failed_expectations = [r.expectation for r in report.failed()]
    if not report.success:
        outcome.reason = report.message()
        return
    outcome.already_stored = same
    outcome.new_rows = len(new)
    if len(new):
        outcome.stored_in = str(_append_rows(entry.name, outcome.symbol, new))
    outcome.accepted = True
    outcome.reason = (
        f"{len(new)} new rows stored, {same} already stored"
        if len(new)
        else f"nothing new: all {same} rows already stored"
    )


def _against_store(
    frame: pd.DataFrame, stored: pd.DataFrame
) -> tuple[pd.DataFrame, int, ExpectationResult]:
    """Split the file's rows into new ones (later than every stored row) and stored ones.

    A row at or before the last stored time that is not equal to the stored row of its time
    breaks the rule: the store's history is never rewritten by a drop.
    """
    if stored.empty:
        return frame, 0, ExpectationResult(STORE_RULE, ("ts_event",), True, 0)
    last = int(stored["ts_event"].max())
    later = frame["ts_event"].to_numpy(np.int64) > last
    new = frame[later].reset_index(drop=True)
    old = frame[~later]
    lookup = stored.drop_duplicates("ts_event", keep="last").set_index("ts_event")
    known = old["ts_event"].isin(lookup.index).to_numpy(bool)
    equal = np.zeros(len(old), dtype=bool)
    if known.any():
        theirs = lookup.loc[old["ts_event"][known], list(BAR_COLUMNS[1:])].to_numpy(np.float64)
        ours = old.loc[known, list(BAR_COLUMNS[1:])].to_numpy(np.float64)
        equal[known] = np.isclose(ours, theirs, rtol=SAME_VALUE_RTOL, atol=0.0).all(axis=1)
    differing = old[~equal]
    count = len(differing)
    detail = ""
    if count:
        last_day = _iso(last)
        detail = (
            f"{count} row{'s' if count != 1 else ''} at or before the last stored time "
            f"{last_day} differ from the stored rows or fill a gap in them, first "
            f"{_iso(int(differing['ts_event'].iloc[0]))}"
        )
    examples = tuple(
        {**{k: float(v) for k, v in row.items() if k != "ts_event"}, "ts_event": _iso(ts)}
        for ts, row in zip(
            differing["ts_event"].tolist()[:MAX_EXAMPLES],
            differing.drop(columns="ts_event").head(MAX_EXAMPLES).to_dict("records"),
            strict=True,
        )
    )
    rule = ExpectationResult(STORE_RULE, ("ts_event",), count == 0, count, examples, detail)
    return new, int(equal.sum()), rule


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").isoformat()


def _append_rows(dataset: str, symbol: str, new: pd.DataFrame) -> Path:
    """Append ``new`` to the symbol's ingested file: write a whole new file, then rename it."""
    target = ingested_bars_path(dataset, symbol)
    target.parent.mkdir(parents=True, exist_ok=True)
    parts = [read_bars_frame(target, symbol).frame] if target.is_file() else []
    rows = pd.concat([*parts, new[list(BAR_COLUMNS)]], ignore_index=True)
    out = pd.DataFrame({"datetime": [_iso(int(t)) for t in rows["ts_event"].tolist()]})
    for column in BAR_COLUMNS[1:]:
        out[column] = rows[column].to_numpy(np.float64)
    _write_atomically(target, out.to_csv(index=False).encode())
    return target


def _write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so that a crash leaves the old file or the new one."""
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut
    finally:
        os.close(folder)


# --- after the decision ------------------------------------------------------------------------


def _settle(path: Path, outcome: FileOutcome) -> None:
    """Move the file to done/ or rejected/, write its report beside it, log and count it."""
    folder = path.parent / (DONE if outcome.accepted else REJECTED)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    try:
        folder.mkdir(exist_ok=True)
        # The name as shown (escaped, bounded), so what reports and logs name exists as is.
        moved = _free_name(folder, f"{stamp}-{_shown(path.name)[:200]}")
        # rename moves a symbolic link itself, never what it points to.
        os.rename(path, moved)
        outcome.moved_to = str(moved)
        report = moved.with_name(moved.name + REPORT_SUFFIX)
        received = datetime.now(UTC).isoformat(timespec="seconds")
        body = {**outcome.to_dict(), "report_file": str(report), "received_at": received}
        _write_atomically(report, (json.dumps(body, indent=2) + "\n").encode())
        outcome.report_file = str(report)
    except OSError as exc:
        # Left in place, the file is decided again on the next run (accepting is idempotent).
        log.error(
            f"ingest: could not move {outcome.file} to {folder}: {exc}",
            extra={"event": "ingest_move_failed", "file": outcome.file, "error": str(exc)},
        )
    fields = {
        "dataset": outcome.dataset,
        "file": outcome.file,
        "symbol": outcome.symbol,
        "rows": outcome.rows,
        "new_rows": outcome.new_rows,
        "moved_to": outcome.moved_to,
    }
    if outcome.accepted:
        log.info(
            f"ingest: accepted {outcome.dataset}/{outcome.file}: {outcome.reason}",
            extra={"event": "ingest_accepted", **fields},
        )
        return
    log.warning(
        f"ingest: rejected {outcome.dataset}/{outcome.file}: {outcome.reason}"[:1000],
        extra={
            "event": "ingest_rejected",
            **fields,
            "reason": outcome.reason[:1000],
            "failed_expectations": outcome.failed_expectations,
        },
    )
    # One counter per known data set: a folder's name chosen by anyone makes no new series.
    known = outcome.dataset in DATASETS
    count_learning_event("gate_failed", f"ingest.{outcome.dataset if known else 'unknown'}")


def _free_name(folder: Path, name: str) -> Path:
    candidate = folder / name
    number = 1
    while os.path.lexists(candidate):
        candidate = folder / f"{number}-{name}"
        number += 1
    return candidate


__all__ = [
    "INBOX_ENV",
    "MAX_FILE_BYTES",
    "FileOutcome",
    "default_inbox",
    "ingest_drop_folder",
    "ingest_inbox",
]
