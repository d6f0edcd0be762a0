"""Bounded reads of registry artifacts: every file a registered version holds is read here.

An artifact store is writable by whoever can reach MLflow, so every file is untrusted input:

- only a regular file is read (a symbolic link, FIFO, device, socket or directory is refused
  before it is opened; a link anywhere below the run's artifact folder is refused too);
- no more than the kind's byte bound plus one byte is ever read;
- JSON nesting is measured without recursion and refused past the kind's depth bound before it
  is parsed (a deeply nested document would exhaust the interpreter's stack, and XGBoost's own
  parser crashes the process on one);
- a skops zip is checked before skops opens it: member count, total inflated size, compression
  ratio, the ``schema.json`` member, and the shape of every ``.npy`` member;
- every failure is a :class:`core.errors.RegistryError` naming the file and the reason, so a
  caller keeps its running set.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import stat
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow.artifacts
import numpy as np
from mlflow.exceptions import MlflowException

from core.errors import RegistryError

T = TypeVar("T")


@dataclass(frozen=True)
class Bound:
    """How much of one kind of artifact may be read.

    Parameters
    ----------
    kind
        What the file is, named in errors (``strategy document``).
    max_bytes
        Largest file accepted; at most ``max_bytes + 1`` bytes are ever read.
    max_depth
        Deepest JSON nesting accepted (objects and arrays), for JSON kinds.
    """

    kind: str
    max_bytes: int
    max_depth: int = 32


@dataclass(frozen=True)
class ZipBound:
    """What a zip archive (a skops file) may hold.

    Parameters
    ----------
    max_members
        Most members accepted.
    max_inflated_bytes
        Largest total uncompressed size of the members.
    max_ratio
        Highest compression ratio of a member larger than ``ratio_floor_bytes``.
    ratio_floor_bytes
        Members up to this size are not ratio-checked (small files compress unevenly).
    """

    max_members: int = 1000
    max_inflated_bytes: int = 200_000_000
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1 << 20


# A strategy config is a few levels deep; the bound leaves room for nested parameter groups.
STRATEGY_DOCUMENT = Bound("strategy document", max_bytes=1_000_000, max_depth=32)
# A gate report holds per-expectation results with example rows, and the ML report nests the
# bars gate's report inside its own.
VALIDATION_REPORT = Bound("validation report", max_bytes=10_000_000, max_depth=32)
# XGBoost JSON models are 8 levels deep; size grows with rounds and tree depth.
XGBOOST_MODEL = Bound("XGBoost model", max_bytes=50_000_000, max_depth=64)
# A TF-IDF pipeline's vocabulary makes a ~12 MB skops file whose schema is 16 levels deep.
SKOPS_MODEL = Bound("skops model", max_bytes=100_000_000, max_depth=64)
SKOPS_ZIP = ZipBound()
SKOPS_SCHEMA = "schema.json"

_CHUNK = 1 << 20
# Central directory entries are 46 bytes plus name, extra field and comment.
_MAX_DIRECTORY_ENTRY_BYTES = 512
_END_OF_DIRECTORY = b"PK\x05\x06"
_END_OF_DIRECTORY_SIZE = 22


def _refuse(where: str, name: str, reason: str) -> RegistryError:
    return RegistryError(f"{where}: {name} {reason}")


# -- files ---------------------------------------------------------------------------------------


def _file_type(mode: int) -> str:
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    )
    return next((text for test, text in kinds if test(mode)), "not a regular file")


def _relative_parts(relative: str, where: str) -> tuple[str, ...]:
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise RegistryError(f"{where}: artifact path {relative!r} is not below the run's folder")
    return parts


def _open_regular(directory: Path, relative: str, where: str) -> int:
    """Open ``directory/relative`` for reading, refusing anything but a regular file.

    ``directory`` is where the store keeps the run's artifacts and is opened as configured;
    below it no component may be a symbolic link, so a planted link cannot point the read at
    another file. Each component is opened relative to its parent (no path is looked up twice),
    and the last one is checked again after opening, in case it was swapped meanwhile.
    """
    parts = _relative_parts(relative, where)
    flags = os.O_RDONLY | os.O_CLOEXEC
    try:
        parent = os.open(directory, flags | os.O_DIRECTORY)
    except OSError as exc:
        raise _refuse(where, relative, f"cannot be read: {exc.strerror}") from None
    try:
        for index, part in enumerate(parts):
            shown = "/".join(parts[: index + 1])
            try:
                found = os.stat(part, dir_fd=parent, follow_symlinks=False)
            except OSError as exc:
                raise _refuse(where, shown, f"cannot be read: {exc.strerror}") from None
            last = index == len(parts) - 1
            wanted = stat.S_ISREG if last else stat.S_ISDIR
            if not wanted(found.st_mode):
                what = "regular file" if last else "directory"
                raise _refuse(where, shown, f"is {_file_type(found.st_mode)}, not a {what}")
            # O_NONBLOCK: should a FIFO be swapped in after the check, opening it cannot block.
            extra = os.O_NONBLOCK if last else os.O_DIRECTORY
            try:
                opened = os.open(part, flags | os.O_NOFOLLOW | extra, dir_fd=parent)
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # it passed the check above, then was swapped
                    raise _refuse(where, shown, "became a symbolic link while opened") from None
                raise _refuse(where, shown, f"cannot be read: {exc.strerror}") from None
            os.close(parent)
            parent = opened
        mode = os.fstat(parent).st_mode
        if not stat.S_ISREG(mode):
            raise _refuse(where, relative, f"is {_file_type(mode)}, not a regular file")
        opened, parent = parent, -1
        return opened
    finally:
        if parent >= 0:
            os.close(parent)


def _read_bounded(descriptor: int, bound: Bound, name: str, where: str) -> bytes:
    size = os.fstat(descriptor).st_size
    if size > bound.max_bytes:
        raise _refuse(
            where, name, f"is {size} bytes, over the {bound.kind} bound {bound.max_bytes}"
        )
    chunks: list[bytes] = []
    total = 0
    # The size seen above may change under us: the read itself stops at bound + 1 bytes.
    while total <= bound.max_bytes:
        chunk = os.read(descriptor, min(_CHUNK, bound.max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > bound.max_bytes:
        raise _refuse(where, name, f"is over the {bound.kind} bound of {bound.max_bytes} bytes")
    return b"".join(chunks)


def read_file(path: Path, bound: Bound, *, where: str) -> bytes:
    """Read one regular file of at most ``bound.max_bytes`` bytes.

    Parameters
    ----------
    path
        The file; its parent folder is opened as given, the file itself must be a regular file.
    bound
        Size bound of the file's kind.
    where
        What the file belongs to (``strategy.x version 3``), named in every error.

    Raises
    ------
    RegistryError
        If the file is missing, not a regular file, or larger than the bound.
    """
    return _read_below(path.parent, path.name, bound, where)


def _read_below(folder: Path, relative: str, bound: Bound, where: str) -> bytes:
    descriptor = _open_regular(folder, relative, where)
    try:
        return _read_bounded(descriptor, bound, relative, where)
    except OSError as exc:
        raise _refuse(where, relative, f"cannot be read: {exc.strerror}") from None
    finally:
        os.close(descriptor)


def local_folder(uri: str) -> Path | None:
    """The folder a ``file:`` (or plain path) artifact URI names; ``None`` for a remote store."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "" and uri:
        return Path(uri)
    return None


def read_artifact(
    artifact_uri: str, relative: str, bound: Bound, *, where: str, tracking_uri: str
) -> bytes:
    """Read the artifact ``relative`` below ``artifact_uri`` (a run's or a version's folder).

    A local store is read in place: copying it first would follow a planted link or block on a
    FIFO. A remote store's file is downloaded into a temporary folder and read from there with
    the same checks.

    Raises
    ------
    RegistryError
        If the artifact cannot be fetched, is not a regular file, or is larger than the bound.
    """
    _relative_parts(relative, where)
    folder = local_folder(artifact_uri)
    if folder is not None:
        return _read_below(folder, relative, bound, where)
    with tempfile.TemporaryDirectory(prefix="registry-artifact-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{artifact_uri.rstrip('/')}/{relative}",
                dst_path=tmp,
                tracking_uri=tracking_uri,
                registry_uri=tracking_uri,
            )
        except (MlflowException, OSError) as exc:
            raise _refuse(where, relative, f"cannot be fetched: {exc}") from None
        return read_file(Path(local), bound, where=where)


def sha256_hex(raw: bytes) -> str:
    """``sha256:<hex>`` of ``raw``, as recorded for an artifact's content."""
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


# -- JSON ----------------------------------------------------------------------------------------


def json_depth(raw: bytes, limit: int | None = None) -> int:
    """Deepest nesting of objects and arrays in a JSON text, measured without recursion.

    Vectorised over 1 MiB chunks (tens of milliseconds per megabyte whatever the text holds): a
    quote preceded by an even run of backslashes opens or closes a string, and only brackets
    outside strings count. Exact for valid JSON; on invalid text it is exact up to the first
    error, which is as far as a parser gets. With ``limit``, the scan stops at the first chunk
    that goes deeper and returns that chunk's depth.
    """
    depth = peak = 0
    inside = 0  # 1 while the scan is inside a string
    slashes = 0  # backslashes ending the previous chunk
    for start in range(0, len(raw), _CHUNK):
        chunk = np.frombuffer(
            raw, dtype=np.uint8, count=min(_CHUNK, len(raw) - start), offset=start
        )
        quotes = chunk == ord('"')
        backslash = chunk == ord("\\")
        if slashes or backslash.any():
            index = np.arange(len(chunk), dtype=np.int32)
            # Position of the last non-backslash at or before each byte (-1: none in this chunk).
            last_other = np.maximum.accumulate(np.where(backslash, np.int32(-1), index))
            before = np.concatenate((np.array([-1], dtype=np.int32), last_other[:-1]))
            run = index - 1 - before + np.where(before < 0, slashes, 0)
            quotes &= run % 2 == 0
            tail = len(chunk) - 1 - int(last_other[-1])
            slashes = tail + (slashes if last_other[-1] < 0 else 0)
        toggled = (inside + np.cumsum(quotes, dtype=np.int32)) & 1
        outside = (toggled == 0).view(np.int8)
        opens = ((chunk == ord("[")) | (chunk == ord("{"))).view(np.int8)
        closes = ((chunk == ord("]")) | (chunk == ord("}"))).view(np.int8)
        running = np.cumsum((opens - closes) * outside, dtype=np.int32)
        peak = max(peak, depth + int(running.max()))
        depth, inside = depth + int(running[-1]), int(toggled[-1])
        if limit is not None and peak > limit:
            break
    return peak


def load_json(raw: bytes, bound: Bound, *, name: str, where: str) -> Any:
    """Parse a JSON artifact whose nesting is within ``bound.max_depth``.

    Raises
    ------
    RegistryError
        If the text nests too deeply, is not UTF-8 or is not JSON.
    """
    depth = json_depth(raw, limit=bound.max_depth)
    if depth > bound.max_depth:
        raise _refuse(
            where, name, f"nests at least {depth} levels deep, over the bound {bound.max_depth}"
        )
    try:
        return json.loads(raw)
    except RecursionError:  # unreachable after the depth check; kept as the last line of defence
        raise _refuse(where, name, "nests too deeply to parse") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise _refuse(where, name, f"is not valid JSON ({exc})") from None


# -- skops ---------------------------------------------------------------------------------------


def _check_end_of_directory(raw: bytes, limits: ZipBound, name: str, where: str) -> None:
    """Bound the central directory before :mod:`zipfile` builds an entry object per member."""
    tail = raw[-(_END_OF_DIRECTORY_SIZE + 0xFFFF) :]
    at = tail.rfind(_END_OF_DIRECTORY)
    if at < 0 or len(tail) - at < _END_OF_DIRECTORY_SIZE:
        raise _refuse(where, name, "is not a zip archive (no end-of-central-directory record)")
    fields = struct.unpack("<4s4H2LH", tail[at : at + _END_OF_DIRECTORY_SIZE])
    entries, directory_bytes = fields[4], fields[5]
    if entries > limits.max_members:
        raise _refuse(where, name, f"has {entries} members, over the bound {limits.max_members}")
    if directory_bytes > limits.max_members * _MAX_DIRECTORY_ENTRY_BYTES:
        raise _refuse(where, name, f"has a central directory of {directory_bytes} bytes")


def _check_members(archive: zipfile.ZipFile, limits: ZipBound, name: str, where: str) -> None:
    members = archive.infolist()
    if len(members) > limits.max_members:
        count = len(members)
        raise _refuse(where, name, f"has {count} members, over the bound {limits.max_members}")
    inflated = sum(member.file_size for member in members)
    if inflated > limits.max_inflated_bytes:
        raise _refuse(
            where,
            name,
            f"inflates to {inflated} bytes, over the bound {limits.max_inflated_bytes}",
        )
    for member in members:
        if member.file_size <= limits.ratio_floor_bytes:
            continue
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > limits.max_ratio:
            raise _refuse(
                where,
                name,
                f"member {member.filename!r} compresses {ratio:.0f}:1 "
                f"({member.compress_size} to {member.file_size} bytes), "
                f"over the bound {limits.max_ratio:.0f}:1",
            )
    if SKOPS_SCHEMA not in archive.namelist():
        raise _refuse(where, name, f"is not a skops file (no {SKOPS_SCHEMA})")


def _check_arrays(archive: zipfile.ZipFile, name: str, where: str) -> None:
    """Refuse a ``.npy`` member whose header claims more data than the member holds.

    numpy allocates the array its header describes before reading it, so a small member could
    otherwise ask for any amount of memory.
    """
    for member in archive.infolist():
        if not member.filename.endswith(".npy"):
            continue
        try:
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise _refuse(
                where, name, f"member {member.filename!r} is not an array ({exc})"
            ) from None
        if dtype.hasobject:
            raise _refuse(where, name, f"member {member.filename!r} holds Python objects")
        claimed = math.prod(shape) * dtype.itemsize
        if claimed > member.file_size:
            raise _refuse(
                where,
                name,
                f"member {member.filename!r} claims {claimed} bytes of data "
                f"but holds {member.file_size}",
            )


def skops_schema(raw: bytes, *, name: str, where: str, limits: ZipBound = SKOPS_ZIP) -> Any:
    """Check a skops file's zip structure and return its parsed ``schema.json``.

    Raises
    ------
    RegistryError
        If the bytes are not a zip, the archive exceeds ``limits``, ``schema.json`` is missing or
        nests too deeply, or an array member claims more data than it holds.
    """
    _check_end_of_directory(raw, limits, name, where)
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            _check_members(archive, limits, name, where)
            _check_arrays(archive, name, where)
            schema_raw = archive.read(SKOPS_SCHEMA)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise _refuse(where, name, f"is not a readable zip archive ({exc})") from None
    schema = load_json(schema_raw, SKOPS_MODEL, name=f"{name} {SKOPS_SCHEMA}", where=where)
    if not isinstance(schema, dict):
        raise _refuse(where, name, f"has a {SKOPS_SCHEMA} that is not an object")
    return schema


def schema_types(schema: Any) -> set[str]:
    """Every ``module.name`` a skops schema refers to (classes and functions alike).

    skops trusts much of numpy and scikit-learn by default; reading the schema lets a loader's
    allow-list be exactly its own and nothing more. Walked with an explicit stack.
    """
    found: set[str] = set()
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if "__module__" in node and "__class__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def load_skops(raw: bytes, trusted: Iterable[str], *, name: str, where: str) -> Any:
    """Load a skops file that holds only ``trusted`` types, after :func:`skops_schema`'s checks.

    Raises
    ------
    RegistryError
        If the file fails a structural check, holds a type outside ``trusted``, or skops cannot
        build it.
    """
    import skops.io as sio

    allowed = sorted(set(trusted))
    found = schema_types(skops_schema(raw, name=name, where=where))
    found |= set(_guarded(lambda: sio.get_untrusted_types(data=raw), name, where))
    untrusted = sorted(found - set(allowed))
    if untrusted:
        raise RegistryError(f"{where}: {name}: refusing to load untrusted types {untrusted}")
    return _guarded(lambda: sio.loads(raw, trusted=allowed), name, where)


def _guarded(load: Callable[[], T], name: str, where: str) -> T:
    """Run a library's loader over untrusted bytes; whatever it raises refuses the file."""
    try:
        return load()
    # The bytes passed every structural check, yet a library may still fail on them in its own
    # way (TypeError, KeyError, MemoryError...): each means this file cannot be used.
    except Exception as exc:
        raise _refuse(where, name, f"cannot be loaded ({type(exc).__name__}: {exc})") from None
