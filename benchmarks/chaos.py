"""Chaos on the real process: SIGKILL the core and Redis at random during a paced replay.

Run: ``.venv/bin/python benchmarks/chaos.py [--kills N] [--redis-restarts N] [--symbols K]
[--seed S] [--sharded] [--power-loss] [--json] [--work-dir DIR]`` (exit status 1 if any
check fails). At full size (all 88 tickers) a run takes about 2 minutes on 2 cores.

The real daily bars of ``equities_daily_stocknet88`` (all 88 tickers, 108,589 bars, by
default) are published into a feed paced over the run while ``strategy-engine core --feed F
--until-end --json --strategies ma_crossover,breakout --no-mlflow`` consumes it as a
subprocess. Meanwhile, in a seeded random order:

- the core is SIGKILLed ``--kills`` times (20), each at a random moment of the 2.5 s (two
  tactical cycles and a half) after it is seen reading following its (re)start, and started
  again at once with the same command;
- the ``redis-server`` is SIGKILLed ``--redis-restarts`` times (3), each at a random moment
  once every core reads, kept down 0.5-2 s, and started again on the same folder.

Redis runs with the settings shipped for users: the append-only file with ``appendfsync
everysec`` (``always`` would hide what a crash can cost), on a unix socket. A SIGKILL of
Redis loses nothing it wrote to its file (the kernel keeps it); ``--power-loss`` also cuts the
file back to what it held a second before each kill, which is what an OS crash may cost with
``everysec``. Nothing in the core is told about any of this. Once the last fault is over the
rest of the feed and its end marker are published, and the core runs to the end.

The result is compared with an uninterrupted run of the same feed in another namespace (on its
own Redis server): orders and fills **lost** (in the reference, not in the chaos run),
**duplicated** (an id stored twice, or the same content under two ids), **extra** (an id the
reference does not have) and **changed** (same id, other content), and the positions that
differ. ``--sharded`` runs two cores, ``--shard 0/2`` and ``--shard 1/2`` (each killed half of
``--kills`` times), against one uninterrupted single core: the union of their outputs must be
the single core's. Each core numbers its own orders, so there orders and fills are matched on
their decision (symbol, time, rank at that time), not on their ids. Outputs are read from
every ledger of the namespace (``{ns}:orders`` and per-core ``{ns}:ledger:<core>:orders``).

The publisher is a producer that never gives a bar twice or skips one: before every chunk it
takes the stream's last entry as the truth (Redis keeps a prefix of what was written) and goes
on from there, so bars a Redis restart lost are published again and counted as
``republished``. At the end the feed is checked entry by entry against the replay. Each lost
or duplicated record is shown with the first fault that followed its core's reading its bar.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import math
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from benchmarks.harness import core_env
from core import codec
from core.adapters.market_streams import FeedPublisher, feed_key
from core.adapters.redis_server import RedisProcess
from core.data.datasets import get_dataset
from core.data.feeds import replay_events
from core.model import Bar, Fill, Order, Position
from core.runtime.shard import SymbolShard

REPO = Path(__file__).resolve().parents[1]
DATASET = "equities_daily_stocknet88"
FEED = DATASET
STRATEGIES = "ma_crossover,breakout"
DEFAULT_KILLS = 20
DEFAULT_REDIS_RESTARTS = 3
TACTICAL_CYCLE_S = 1.0
# A kill lands within this long after the core was seen reading: before its first checkpoint
# after the restart, between two, or during one.
KILL_WINDOW_S = 2 * TACTICAL_CYCLE_S + 0.5
REDIS_DOWN_S = (0.5, 2.0)
POWER_LOSS_S = 1.0  # what appendfsync everysec may lose in an OS crash
PUBLISH_CHUNK = 200  # bars per pipeline: small, so a Redis kill often lands mid-chunk
UP_TIMEOUT_S = 120.0
END_TIMEOUT_S = 600.0
MAX_CRASH_RESTARTS = 20
EXAMPLES = 20  # ids listed per kind of difference
# Redis answers these while it is down or loading its append-only file.
REDIS_AWAY = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError)


# -- processes --------------------------------------------------------------------------------


def core_argv(namespace: str, name: str, shard: str = "") -> list[str]:
    """The core's command line, run by this Python; every (re)start uses it unchanged."""
    argv = [
        sys.executable, "-m", "strategy_engine.cli", "core",
        "--feed", FEED, "--until-end", "--json", "--strategies", STRATEGIES,
        "--namespace", namespace, "--name", name, "--no-mlflow",
        "--tactical-cycle-s", str(TACTICAL_CYCLE_S),
    ]  # fmt: skip
    return [*argv, "--shard", shard] if shard else argv


@dataclass
class CoreProcess:
    """One core: its command, and every process started with it (output kept in files)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_dir: Path
    shard: SymbolShard = field(default_factory=SymbolShard)
    process: subprocess.Popen[bytes] | None = None
    spawned_wall: float = 0.0
    spawns: int = 0
    kills: int = 0
    crashes: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str:
        return f"core:{self.name}"

    def spawn(self) -> None:
        self.spawns += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self._log("out").open("wb") as out, self._log("err").open("wb") as err:
            self.process = subprocess.Popen(
                self.argv, cwd=REPO, env=self.env, stdout=out, stderr=err
            )
        self.spawned_wall = time.time()

    def kill(self) -> None:
        """SIGKILL: no last checkpoint, no acknowledgement."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self.kills += 1

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stdout(self) -> str:
        return self._log("out").read_text(errors="replace")

    def stderr_tail(self) -> str:
        return self._log("err").read_text(errors="replace")[-1500:]

    def _log(self, kind: str) -> Path:
        return self.log_dir / f"{self.name}.{self.spawns}.{kind}"


# -- the feed ---------------------------------------------------------------------------------


class PacedPublisher(threading.Thread):
    """Publish the feed in chunks at ``rate`` bars per second, never past ``gate()`` of it.

    ``gate`` (0-1) keeps the feed from ending before the chaos does; ``rate`` is retuned as
    faults are done so that bars keep arriving until the last one. The stream's last entry is
    the truth about what was published (not its length: the core trims old entries): after a
    Redis restart that lost the tail, it goes on from what Redis kept.
    """

    def __init__(
        self,
        server: RedisProcess,
        namespace: str,
        events: Sequence[Bar],
        gate: Callable[[], float],
        rate: float,
    ) -> None:
        super().__init__(name="chaos-publisher", daemon=True)
        self.server = server
        self.key = feed_key(namespace, FEED)
        self.payloads = [codec.encode(e) for e in events]
        self.position = {payload: k for k, payload in enumerate(self.payloads)}
        if len(self.position) != len(self.payloads):
            raise ValueError("the feed holds the same bar twice: its entries cannot be told apart")
        self.entry_ids: list[tuple[int, int]] = [(0, 0)] * len(self.payloads)
        self.gate = gate
        self.rate = rate
        self.published = 0  # entries Redis confirmed (its prefix of the feed)
        self.republished = 0
        self.errors = 0
        self.finished = threading.Event()
        self.failure = ""
        self._stop_asked = threading.Event()

    def stop(self) -> None:
        self._stop_asked.set()

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # reported by the benchmark: the run cannot be judged
            self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            self.finished.set()

    def _run(self) -> None:
        client = self.server.client()
        total = len(self.payloads)
        budget = 0.0
        last = time.monotonic()
        while not self._stop_asked.is_set():
            now = time.monotonic()
            # No credit builds up while the gate holds the feed: it would come out as a burst.
            budget = min(budget + self.rate * (now - last), self.gate() * total + PUBLISH_CHUNK)
            last = now
            try:
                have = self._held(client)
                if have < self.published:  # Redis lost acknowledged entries at a restart
                    self.republished += self.published - have
                self.published = have
                if have > total:
                    return  # every bar and the end marker are in
                if have == total:
                    if self.gate() >= 1.0:
                        client.xadd(self.key, {b"end": b"1", b"t_pub": _now()})
                    else:
                        time.sleep(0.02)
                    continue
                allowed = min(int(self.gate() * total), int(budget))
                if allowed <= have:
                    time.sleep(0.02)
                    continue
                upto = min(have + PUBLISH_CHUNK, allowed)
                with client.pipeline(transaction=False) as pipe:
                    for payload in self.payloads[have:upto]:
                        pipe.xadd(self.key, {b"msg": payload, b"t_pub": _now()})
                    ids = pipe.execute()
                for index, entry_id in enumerate(ids, start=have):
                    self.entry_ids[index] = _entry_id(entry_id)
                self.published = upto
            except REDIS_AWAY:
                self.errors += 1
                client.close()
                time.sleep(0.05)

    def _held(self, client: redis.Redis) -> int:
        """How many bars of the feed Redis holds (one more once the end marker is in)."""
        last = cast(list[Any], client.xrevrange(self.key, count=1))
        if not last:
            return 0
        fields = last[0][1]
        if fields.get(b"end") == b"1":
            return len(self.payloads) + 1
        return self.position[fields[b"msg"]] + 1

    def index_of(self, entry_id: Any) -> int:
        """How many bars of the feed come at or before stream entry ``entry_id``."""
        return bisect.bisect_right(self.entry_ids, _entry_id(entry_id), hi=self.published)


def _now() -> bytes:
    return str(time.time_ns()).encode()


def _entry_id(value: Any) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else str(value)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def load_events(symbols: int | None, seed: int) -> list[Bar]:
    """The real replay, of all tickers or ``symbols`` of them drawn with ``seed``."""
    tickers = list(get_dataset(DATASET).tickers)
    if symbols is not None and symbols < len(tickers):
        tickers = sorted(random.Random(seed).sample(tickers, symbols))
    return cast(list[Bar], replay_events(DATASET, symbols=tickers))


# -- the chaos --------------------------------------------------------------------------------


@dataclass
class Fault:
    """One planned fault: a kill of ``core`` (an index), or a Redis restart (``core`` None)."""

    core: int | None

    @property
    def kind(self) -> str:
        return "redis_restart" if self.core is None else "core_kill"


def plan_faults(kills: int, redis_restarts: int, cores: int, rng: random.Random) -> list[Fault]:
    """Kills spread evenly over the cores, Redis restarts among them, in a random order."""
    faults = [Fault(k % cores) for k in range(kills)] + [Fault(None)] * redis_restarts
    rng.shuffle(faults)
    return faults


class Chaos:
    """Run the planned faults against running cores, restart what was killed, and tend them.

    A core that exits on its own (a crash, not a kill) is recorded and started again once
    Redis is up, as a supervisor would.
    """

    def __init__(
        self,
        server: RedisProcess,
        cores: list[CoreProcess],
        rng: random.Random,
        deadline: float,
        power_loss_s: float = 0.0,
    ) -> None:
        self.server = server
        self.cores = cores
        self.rng = rng
        self.deadline = deadline
        self.power_loss_s = power_loss_s
        # (time, inode, size) of the append-only file, sampled while waiting: what it held
        # ``power_loss_s`` before a kill is what an fsync every second is sure to have kept.
        self._aof: deque[tuple[float, int, int]] = deque(maxlen=2000)
        self.client = server.client(timeout_s=2.0)
        self.publisher: PacedPublisher | None = None
        self.faults_done = 0
        self.faults_total = 0
        self.records: list[dict[str, Any]] = []
        self.started = time.monotonic()
        self.period = 1.0  # expected seconds per fault; set once the cores' startup is known
        self.chaos_over = False

    # -- waiting, tending ---------------------------------------------------------------------

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.tend()
            time.sleep(min(0.02, left))

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float) -> None:
        limit = min(self.deadline, time.monotonic() + timeout_s)
        while not condition():
            if time.monotonic() > limit:
                raise TimeoutError(f"timed out waiting for {what}")
            self.tend()
            time.sleep(0.02)

    def tend(self) -> None:
        """Restart a core that exited without being killed (Redis must be up for it to start)."""
        if self.power_loss_s > 0 and self.server.alive:
            with contextlib.suppress(OSError):
                stat = self.server.aof.stat()
                self._aof.append((time.monotonic(), stat.st_ino, stat.st_size))
        for core in self.cores:
            code = core.exit_code()
            if code is None or core.finished:
                continue
            if code == 0 and self.chaos_over:
                core.finished = True
                core.summary = _summary(core.stdout())
                continue
            if not self.server.alive:
                continue
            core.crashes.append({
                "spawn": core.spawns, "exit": code, "t_s": self._t(),
                "stderr": core.stderr_tail(),
            })  # fmt: skip
            if len(core.crashes) > MAX_CRASH_RESTARTS:
                raise RuntimeError(
                    f"{core.name} crashed {len(core.crashes)} times: {core.crashes[-1]}"
                )
            core.spawn()

    def is_up(self, core: CoreProcess) -> bool:
        """Running, and seen reading its feed since it was (re)started."""
        if core.exit_code() is not None:
            return False
        try:
            consumers = self.client.xinfo_consumers(feed_key(_namespace(core), FEED), core.group)
        except REDIS_AWAY:
            return False
        for consumer in consumers:
            if _text(consumer.get("name")) == core.name:
                seen = time.time() - float(consumer.get("idle", 0)) / 1000.0
                return seen >= core.spawned_wall
        return False

    # -- faults -------------------------------------------------------------------------------

    def run(self, faults: list[Fault]) -> None:
        self.faults_total = len(faults)
        for number, fault in enumerate(faults, start=1):
            began = time.monotonic()
            if fault.core is None:
                record = self._restart_redis()
            else:
                record = self._kill(self.cores[fault.core])
            record.update(n=number, kind=fault.kind, seconds=round(time.monotonic() - began, 3))
            self.records.append(record)
            self.faults_done = number
            self._retune()
        self.chaos_over = True

    def gate(self) -> float:
        """How much of the feed may be out: the share of each fault so far and of the next."""
        if self.chaos_over or self.faults_total == 0:
            return 1.0
        return (self.faults_done + 1) / (self.faults_total + 1)

    def _retune(self) -> None:
        """Spread the rest of the feed over the faults left, at the pace faults take.

        The first guess (``period``) counts as one fault already measured, so that a first
        fault that did not have to wait for a core to start does not set too fast a pace.
        """
        publisher = self.publisher
        if publisher is None:
            return
        mean = (time.monotonic() - self.started + self.period) / (self.faults_done + 1)
        left = len(publisher.payloads) - publisher.published
        remaining = self.faults_total - self.faults_done
        publisher.rate = max(50.0, left / max(mean * (remaining + 0.5), 1.0))

    def _kill(self, core: CoreProcess) -> dict[str, Any]:
        self.wait_for(lambda: self.is_up(core), f"{core.name} to read", UP_TIMEOUT_S)
        uptime_at_up = time.time() - core.spawned_wall
        delay = self.rng.uniform(0.0, KILL_WINDOW_S)
        self.sleep(delay)
        delivered = self._delivered()
        core.kill()
        record = {
            "core": core.name, "t_s": self._t(), "spawn": core.spawns,
            "up_after_s": round(uptime_at_up, 3), "delay_s": round(delay, 3),
            "delivered": delivered,
        }  # fmt: skip
        core.spawn()  # the same command, at once
        return record

    def _restart_redis(self) -> dict[str, Any]:
        self.wait_for(lambda: all(self.is_up(c) for c in self.cores), "every core", UP_TIMEOUT_S)
        delay = self.rng.uniform(0.0, KILL_WINDOW_S)
        self.sleep(delay)
        delivered = self._delivered()
        before = self._lengths()
        self.server.kill()
        killed_at, t_kill = time.monotonic(), self._t()
        dropped = self._lose_unsynced(killed_at) if self.power_loss_s > 0 else None
        down = self.rng.uniform(*REDIS_DOWN_S)
        self.sleep(down)
        self.server.start()
        self.note_redis_start()
        after = self._lengths()
        lost = {k: before[k] - after[k] for k in before if k in after and after[k] < before[k]}
        return {
            "t_s": t_kill, "delay_s": round(delay, 3), "down_s": round(down, 3),
            "delivered": delivered, "lengths_before": before, "lengths_after": after,
            "entries_lost": lost, "aof_bytes_dropped": dropped,
        }  # fmt: skip

    def note_redis_start(self) -> None:
        """Forget the file's sizes before a restart; what Redis loaded from it is on disk."""
        self._aof.clear()
        with contextlib.suppress(OSError):
            stat = self.server.aof.stat()
            self._aof.append((time.monotonic() - self.power_loss_s, stat.st_ino, stat.st_size))

    def _lose_unsynced(self, killed_at: float) -> int | None:
        """Cut the append-only file back to what it held ``power_loss_s`` before the kill.

        A SIGKILL loses nothing Redis wrote (the kernel has it); an OS crash loses what was not
        yet fsynced, up to about a second with ``everysec``. None if the file was rewritten
        since (another inode): nothing is cut then.
        """
        path = self.server.aof
        stat = path.stat()
        kept = [
            size
            for at, inode, size in self._aof
            if at <= killed_at - self.power_loss_s and inode == stat.st_ino
        ]
        if not kept or kept[-1] > stat.st_size:
            return None
        with path.open("r+b") as handle:
            handle.truncate(kept[-1])
        return stat.st_size - kept[-1]

    def _delivered(self) -> dict[str, int]:
        """Per core, how many bars of the feed its group had been handed (absent if unknown)."""
        publisher = self.publisher
        try:
            groups = self.client.xinfo_groups(feed_key(_namespace(self.cores[0]), FEED))
        except REDIS_AWAY:
            return {}
        by_name = {_text(g.get("name")): _text(g.get("last-delivered-id")) for g in groups}
        result = {}
        for core in self.cores:
            last = by_name.get(core.group)
            if last and publisher is not None:
                result[core.name] = publisher.index_of(last)
        return result

    def _lengths(self) -> dict[str, int]:
        """Entries per stream, orders and fills over every ledger (taken before a Redis kill, a
        lower bound: the cores and the publisher keep writing until the kill)."""
        namespace = _namespace(self.cores[0])
        try:
            names = {
                "feed": [feed_key(namespace, FEED)],
                "orders": ledger_keys(self.client, namespace, "orders"),
                "fills": ledger_keys(self.client, namespace, "fills"),
                "signals": [f"{namespace}:signals"],
            }
            with self.client.pipeline(transaction=False) as pipe:
                for keys in names.values():
                    for key in keys:
                        pipe.xlen(key)
                counts = iter(int(n) for n in pipe.execute())
            return {name: sum(next(counts) for _ in keys) for name, keys in names.items()}
        except REDIS_AWAY:
            return {}

    def finish(self, timeout_s: float) -> None:
        """Let the rest of the feed out and wait for every core to run to its end."""
        self.chaos_over = True
        self.wait_for(
            lambda: all(c.finished for c in self.cores), "every core to reach the end", timeout_s
        )

    def _t(self) -> float:
        return round(time.monotonic() - self.started, 3)


def _namespace(core: CoreProcess) -> str:
    return core.argv[core.argv.index("--namespace") + 1]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _summary(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    try:
        return cast(dict[str, Any], json.loads(lines[-1])) if lines else {}
    except json.JSONDecodeError:
        return {}


# -- outputs and their comparison ---------------------------------------------------------------


@dataclass
class Outputs:
    """What a run left in its namespace: orders and fills in stream order, positions by symbol."""

    orders: list[Order]
    fills: list[Fill]
    positions: dict[str, Position | None]


def ledger_keys(client: redis.Redis, namespace: str, name: str) -> list[str]:
    """Every key of ``name`` (``orders``, ``fills``, ``positions``) in the namespace: the
    namespace's own (``{ns}:orders``) and those of cores that keep a ledger of their own
    (``{ns}:ledger:<core>:orders``), so sharded cores are read whichever way they store."""
    own = cast(list[bytes], client.scan_iter(match=f"{namespace}:ledger:*:{name}", count=1000))
    return [f"{namespace}:{name}", *sorted(k.decode() for k in own)]


def read_outputs(client: redis.Redis, namespace: str) -> Outputs:
    """Every entry of the orders and fills streams (duplicates included) and the positions.

    A symbol whose position is in two ledgers is kept as None: two cores claim it.
    """

    def stream(name: str, kind: type[Any]) -> list[Any]:
        records = []
        for key in ledger_keys(client, namespace, name):
            entries = cast(list[Any], client.xrange(key))
            records += [codec.decode(fields[b"msg"], kind) for _, fields in entries]
        return records

    positions: dict[str, Position | None] = {}
    for key in ledger_keys(client, namespace, "positions"):
        for payload in cast(dict[bytes, bytes], client.hgetall(key)).values():
            position = codec.decode(payload, Position)
            positions[position.symbol] = None if position.symbol in positions else position
    return Outputs(stream("orders", Order), stream("fills", Fill), positions)


def _order_content(order: Order) -> tuple[Any, ...]:
    return (order.symbol, order.side, order.quantity, order.ts_event, order.strategy,
            order.limit_price)  # fmt: skip


def _fill_content(fill: Fill) -> tuple[Any, ...]:
    return (fill.symbol, fill.side, fill.quantity, fill.price, fill.fee, fill.ts_event,
            fill.strategy)  # fmt: skip


def _number(record_id: str) -> tuple[int, str]:
    """How an id's last part orders it (the broker's sequence number where it is one)."""
    tail = record_id.rsplit("-", 1)[-1]
    return (int(tail) if tail.isdigit() else -1, record_id)


def decision_keys(outputs: Outputs) -> tuple[dict[str, str], dict[str, str]]:
    """Ids -> keys that do not depend on which core numbered the orders.

    Each core numbers its own orders, so a shard's order ids cannot be a single core's. An
    order is keyed by its symbol, decision time and rank among that symbol's orders at that
    time (in the core's numbering order); a fill by its order's key and its own number.
    """
    by_decision: dict[tuple[str, int], set[str]] = {}
    for order in outputs.orders:
        by_decision.setdefault((order.symbol, order.ts_event), set()).add(order.order_id)
    orders = {
        order_id: f"{symbol}@{ts}#{rank}"
        for (symbol, ts), ids in by_decision.items()
        for rank, order_id in enumerate(sorted(ids, key=_number))
    }
    fills = {}
    for fill in outputs.fills:
        order_key = orders.get(fill.order_id, f"{fill.order_id}?")  # its order is missing
        tail = fill.fill_id.removeprefix(f"{fill.order_id}-")
        fills[fill.fill_id] = f"{order_key}/{tail}"
    return orders, fills


def compare_records(
    reference: Sequence[tuple[str, Any]],
    chaos: Sequence[tuple[str, Any]],
    content_of: Callable[[Any], tuple[Any, ...]],
) -> dict[str, Any]:
    """Lost, duplicated, extra and changed records of the chaos run against the reference.

    Records come as (key, record): the key is the id, or a core-independent key (see
    :func:`decision_keys`). A duplicate is a key stored more than once, or a content
    (everything but the ids) stored under more keys than the reference has it under; an extra
    is a key the reference lacks that is not such a duplicate.

    Returns
    -------
    dict
        Counts (``reference``, ``chaos``, ``lost``, ``duplicated`` = ``duplicated_ids`` +
        ``duplicated_content``, ``extra``, ``changed``) and the records behind each, under
        ``records`` (key -> record, for examples).
    """
    ref_by_key = dict(reference)
    counts = Counter(key for key, _ in chaos)
    first: dict[str, Any] = {}
    for key, record in chaos:
        first.setdefault(key, record)
    lost = [k for k in ref_by_key if k not in counts]
    twice = {k: n - 1 for k, n in counts.items() if n > 1}
    ref_contents = Counter(content_of(r) for r in ref_by_key.values())
    keys_by_content: dict[tuple[Any, ...], list[str]] = {}
    for key, record in first.items():
        keys_by_content.setdefault(content_of(record), []).append(key)
    same_content: list[str] = []  # keys beyond the reference's count of that content
    for content, keys in keys_by_content.items():
        excess = len(keys) - ref_contents.get(content, 0)
        if excess > 0 and len(keys) > 1:
            strangers = [k for k in keys if k not in ref_by_key] or keys
            same_content.extend(sorted(strangers, key=_number)[-excess:])
    doubled = set(same_content)
    extra = [k for k in first if k not in ref_by_key and k not in doubled]
    changed = [
        k
        for k, r in first.items()
        if k in ref_by_key and content_of(r) != content_of(ref_by_key[k])
    ]
    return {
        "reference": len(reference),
        "chaos": len(chaos),
        "lost": len(lost),
        "duplicated": sum(twice.values()) + len(same_content),
        "duplicated_ids": sum(twice.values()),
        "duplicated_content": len(same_content),
        "extra": len(extra),
        "changed": len(changed),
        "keys": {
            "lost": lost,
            "duplicated_id": sorted(twice),
            "duplicated_content": same_content,
            "extra": extra,
            "changed": changed,
        },
        "records": {**first, **{k: r for k, r in ref_by_key.items() if k not in first}},
    }


def match_outputs(
    reference: Outputs, chaos: Outputs, on: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`compare_records` of the orders and of the fills, keyed by ``on``: ``"id"`` or
    ``"decision"`` (see :func:`decision_keys`)."""
    if on == "decision":
        ref_orders, ref_fills = decision_keys(reference)
        chaos_orders, chaos_fills = decision_keys(chaos)
    else:
        ref_orders = {o.order_id: o.order_id for o in reference.orders}
        ref_fills = {f.fill_id: f.fill_id for f in reference.fills}
        chaos_orders = {o.order_id: o.order_id for o in chaos.orders}
        chaos_fills = {f.fill_id: f.fill_id for f in chaos.fills}
    orders = compare_records(
        [(ref_orders[o.order_id], o) for o in reference.orders],
        [(chaos_orders[o.order_id], o) for o in chaos.orders],
        _order_content,
    )
    fills = compare_records(
        [(ref_fills[f.fill_id], f) for f in reference.fills],
        [(chaos_fills[f.fill_id], f) for f in chaos.fills],
        _fill_content,
    )
    return orders, fills


def _close(a: float, b: float, abs_tol: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=abs_tol)


def compare_positions(
    reference: dict[str, Position | None], chaos: dict[str, Position | None]
) -> list[str]:
    """Symbols whose stored position (quantity, average price, realized PnL) differs, or
    that are missing or claimed by two ledgers (None) on either side."""
    differing = []
    for symbol in sorted(set(reference) | set(chaos)):
        a, b = reference.get(symbol), chaos.get(symbol)
        if (
            a is None
            or b is None
            or not _close(a.quantity, b.quantity)
            or not _close(a.avg_price, b.avg_price)
            or not _close(a.realized_pnl, b.realized_pnl, abs_tol=1e-6)
        ):
            differing.append(symbol)
    return differing


def attribute(
    record: Order | Fill,
    faults: list[dict[str, Any]],
    events: Sequence[Bar],
    cores: Sequence[CoreProcess],
) -> dict[str, Any]:
    """The record's id and the first fault after its bar had been handed to its core.

    Orders and fills are made when their bar is processed, so a record lost or written twice
    points at the first fault that came after its core had read that bar.
    """
    record_id = record.order_id if isinstance(record, Order) else record.fill_id
    owner = next((c for c in cores if c.shard.owns(record.symbol)), cores[0])
    found: dict[str, Any] = {"id": record_id, "core": owner.name, "after_fault": None}
    for fault in faults:
        delivered = fault.get("delivered", {}).get(owner.name)
        if delivered and events[delivered - 1].ts_event >= record.ts_event:
            found.update(after_fault=fault["n"], fault=fault["kind"], fault_core=fault.get("core"))
            break
    return found


def _examples(
    result: dict[str, Any],
    faults: list[dict[str, Any]],
    events: Sequence[Bar],
    cores: Sequence[CoreProcess],
) -> dict[str, Any]:
    """``result`` with the first :data:`EXAMPLES` records of each difference, attributed."""
    records, keys = result.pop("records"), result.pop("keys")
    result["examples"] = {
        what: [attribute(records[k], faults, events, cores) for k in found[:EXAMPLES]]
        for what, found in keys.items()
    }
    return result


# -- the benchmark ----------------------------------------------------------------------------


def run_reference(
    events: Sequence[Bar], namespace: str, work_dir: Path, timeout_s: float
) -> tuple[Outputs, dict[str, Any], float]:
    """An uninterrupted single core on the whole feed, on its own Redis server."""
    server = RedisProcess(work_dir / "ref")
    server.start()
    client = server.client(timeout_s=30.0)
    try:
        FeedPublisher(client, namespace).publish(FEED, events)
        t0 = time.perf_counter()
        done = subprocess.run(
            core_argv(namespace, "core-1"), cwd=REPO, env=core_env(server.url, work_dir / "ref"),
            capture_output=True, text=True, timeout=timeout_s,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"the reference core failed ({done.returncode}): {done.stderr}")
        return read_outputs(client, namespace), _summary(done.stdout), seconds
    finally:
        client.close()
        server.kill()


def run_chaos(
    *,
    kills: int = DEFAULT_KILLS,
    redis_restarts: int = DEFAULT_REDIS_RESTARTS,
    symbols: int | None = None,
    seed: int = 0,
    sharded: bool = False,
    power_loss_s: float = 0.0,
    work_dir: Path | None = None,
    timeout_s: float = 3600.0,
) -> dict[str, Any]:
    """Run the reference, then the chaos run, and compare them.

    Parameters
    ----------
    kills : int
        SIGKILLs of the core (``sharded``: in all, half for each core).
    redis_restarts : int
        SIGKILLs of the Redis server, each followed by a start on the same folder.
    symbols : int, optional
        Only this many tickers (drawn with ``seed``); all 88 by default.
    seed : int
        Seed of the ticker draw, the order of the faults and every delay.
    sharded : bool
        Two cores, ``--shard 0/2`` and ``--shard 1/2``, instead of one.
    power_loss_s : float
        With each Redis kill, also drop what the append-only file got in this many seconds
        before it, as an OS crash would with ``everysec`` (0: a process crash only).
    work_dir : Path, optional
        Where the Redis folders and the cores' output go (a temp dir, removed, by default).
    timeout_s : float
        Longest the whole run may take.

    Returns
    -------
    dict
        ``ok``, ``failures``, ``orders``/``fills`` (counts, lost, duplicated, extra, changed,
        with example ids and the fault each follows), ``positions``, the faults done and every
        fault's record, the cores' spawns, crashes and last summaries, and wall times.
    """
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="se-chaos-") as tmp:
            return run_chaos(
                kills=kills, redis_restarts=redis_restarts, symbols=symbols, seed=seed,
                sharded=sharded, power_loss_s=power_loss_s, work_dir=Path(tmp),
                timeout_s=timeout_s,
            )  # fmt: skip
    began = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    rng = random.Random(seed)
    events = load_events(symbols, seed)
    namespace = f"chaos-{uuid.uuid4().hex[:8]}"
    reference, reference_summary, reference_s = run_reference(
        events, f"{namespace}-ref", work_dir, timeout_s
    )

    server = RedisProcess(work_dir / "chaos")
    server.start()
    env = core_env(server.url, work_dir / "chaos")
    shards = [f"{k}/2" for k in range(2)] if sharded else [""]
    cores = [
        CoreProcess(
            name=f"shard-{k}" if sharded else "core-1",
            argv=core_argv(namespace, f"shard-{k}" if sharded else "core-1", shard),
            env=env,
            log_dir=work_dir / "logs",
            shard=SymbolShard.parse(shard=shard),
        )
        for k, shard in enumerate(shards)
    ]
    faults = plan_faults(kills, redis_restarts, len(cores), rng)
    chaos = Chaos(server, cores, rng, deadline, power_loss_s)
    chaos.note_redis_start()
    publisher: PacedPublisher | None = None
    chaos_began = time.perf_counter()
    try:
        for core in cores:
            core.spawn()
        started = time.monotonic()
        chaos.wait_for(lambda: all(chaos.is_up(c) for c in cores), "the cores", UP_TIMEOUT_S)
        startup_s = time.monotonic() - started
        # A first guess of a fault's length; retuned from the measured ones as they are done.
        chaos.period = startup_s + KILL_WINDOW_S / 2 + 0.5
        rate = len(events) / max(chaos.period * (len(faults) + 1), 1.0)
        publisher = PacedPublisher(server, namespace, events, chaos.gate, rate)
        chaos.publisher = publisher
        chaos.started = time.monotonic()
        publisher.start()
        chaos.run(faults)
        chaos.finish(min(END_TIMEOUT_S, max(1.0, deadline - time.monotonic())))
        chaos_s = time.perf_counter() - chaos_began
        publisher.join(timeout=30)
        client = server.client(timeout_s=30.0)
        try:
            outputs = read_outputs(client, namespace)
            feed = cast(list[Any], client.xrange(feed_key(namespace, FEED)))
            pending = {
                c.name: int(cast(dict[str, Any], client.xpending(
                    feed_key(namespace, FEED), c.group))["pending"])
                for c in cores
            }  # fmt: skip
        finally:
            client.close()
    finally:
        if publisher is not None:
            publisher.stop()
        for core in cores:
            if core.exit_code() is None and core.process is not None:
                core.process.kill()
                core.process.wait(timeout=30)
        server.kill()
    wall_s = time.perf_counter() - began
    assert publisher is not None

    # Bars in order, each once, then the end marker; the core may have trimmed the oldest.
    messages = [fields.get(b"msg") for _, fields in feed[:-1]]
    trimmed = len(publisher.payloads) - len(messages)
    feed_intact = (
        bool(feed)
        and feed[-1][1].get(b"end") == b"1"
        and trimmed >= 0
        and messages == publisher.payloads[trimmed:]
    )
    # One core must give the very ids of the reference; each of two cores numbers its own
    # orders, so shards are matched on decisions. Decisions are reported for one core too:
    # they tell a lost trade from one renumbered after a fault.
    orders, fills = match_outputs(reference, outputs, "decision" if sharded else "id")
    by_decision = match_outputs(reference, outputs, "decision")
    differing = compare_positions(reference.positions, outputs.positions)
    for result in (orders, fills):
        _examples(result, chaos.records, events, cores)
    decisions = {
        kind: {k: v for k, v in result.items() if k not in ("keys", "records")}
        for kind, result in zip(("orders", "fills"), by_decision, strict=True)
    }

    kills_done = sum(1 for r in chaos.records if r["kind"] == "core_kill")
    restarts_done = sum(1 for r in chaos.records if r["kind"] == "redis_restart")
    crashes = [{"core": c.name, **crash} for c in cores for crash in c.crashes]
    failures: list[str] = []

    def check(ok: bool, line: str) -> None:
        if not ok:
            failures.append(line)

    for kind, result in (("orders", orders), ("fills", fills)):
        for what in ("lost", "duplicated", "extra", "changed"):
            check(result[what] == 0, f"{result[what]} {kind} {what}")
    check(not differing, f"{len(differing)} positions differ: {', '.join(differing[:10])}")
    check(kills_done == kills, f"{kills_done} core kills done of {kills}")
    check(restarts_done == redis_restarts, f"{restarts_done} Redis restarts of {redis_restarts}")
    check(feed_intact, "the feed in Redis is not the replay (a harness fault)")
    check(not publisher.failure, f"publisher: {publisher.failure}")
    check(not any(pending.values()), f"entries left pending: {pending}")
    check(bool(reference.fills), "the reference made no fills to compare")
    events_in = sum(int(c.summary.get("events_in", 0)) for c in cores)
    check(events_in == len(events), f"the cores took {events_in} bars of {len(events)}")

    return {
        "ok": not failures,
        "failures": failures,
        "scenario": "sharded" if sharded else "single",
        "dataset": DATASET,
        "seed": seed,
        "symbols": len({e.symbol for e in events}),
        "events": len(events),
        "redis": {"appendonly": "yes", "appendfsync": "everysec", "socket": "unix"},
        "power_loss_s": power_loss_s,
        "aof_bytes_dropped": [
            r.get("aof_bytes_dropped") for r in chaos.records if r["kind"] == "redis_restart"
        ],
        "kills_planned": kills,
        "kills": kills_done,
        "kills_by_core": {c.name: c.kills for c in cores},
        "redis_restarts_planned": redis_restarts,
        "redis_restarts": restarts_done,
        "redis_entries_lost_at_restarts": {
            k: sum(r.get("entries_lost", {}).get(k, 0) for r in chaos.records)
            for k in ("feed", "orders", "fills", "signals")
        },
        "core_crashes": crashes,
        "feed_intact": feed_intact,
        "feed_republished": publisher.republished,
        "feed_trimmed_by_core": trimmed,
        "publisher_errors": publisher.errors,
        "pending": pending,
        "matched_on": "decision" if sharded else "id",
        "orders": orders,
        "fills": fills,
        "by_decision": decisions,
        "positions": {
            "reference": len(reference.positions),
            "chaos": len(outputs.positions),
            "differing": len(differing),
            "differing_symbols": differing,
        },
        "cores": {
            c.name: {
                "shard": c.shard.describe(),
                "spawns": c.spawns,
                "kills": c.kills,
                "crashes": len(c.crashes),
                "last_run": {k: c.summary.get(k) for k in _RUN_FIGURES},
            }
            for c in cores
        },
        "reference_run": {k: reference_summary.get(k) for k in _RUN_FIGURES},
        "faults": chaos.records,
        "timings": {
            "reference_s": round(reference_s, 2),
            "chaos_s": round(chaos_s, 2),
            "wall_s": round(wall_s, 2),
        },
    }


_RUN_FIGURES = ("events_in", "events_rejected", "events_skipped", "orders", "fills",
                "restored_from_checkpoint", "read_errors", "redis", "last_error")  # fmt: skip


# -- output -----------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> str:
    """The result as a table: faults, outputs against the reference, positions, wall time."""
    o, f, p, t = result["orders"], result["fills"], result["positions"], result["timings"]
    cores = ", ".join(f"{name} {c['kills']}" for name, c in result["cores"].items())
    lost = result["redis_entries_lost_at_restarts"]
    lines = [
        f"scenario {result['scenario']}: {result['symbols']} symbols, {result['events']} bars, "
        f"seed {result['seed']}; Redis AOF appendfsync everysec"
        + (
            f", each kill losing the AOF's last {result['power_loss_s']:g} s"
            if result["power_loss_s"]
            else ""
        ),
        "",
        f"{'':<12}{'reference':>10}{'chaos':>8}{'lost':>7}{'duplicated':>12}{'extra':>7}"
        f"{'changed':>9}",
    ]
    for name, r in (("orders", o), ("fills", f)):
        lines.append(
            f"{name:<12}{r['reference']:>10}{r['chaos']:>8}{r['lost']:>7}{r['duplicated']:>12}"
            f"{r['extra']:>7}{r['changed']:>9}"
        )
    if result["matched_on"] == "id":
        for name, r in result["by_decision"].items():
            lines.append(
                f"{name + ' (decisions)':<22}lost {r['lost']}, duplicated {r['duplicated']}, "
                f"extra {r['extra']}, changed {r['changed']}"
            )
    lines += [
        f"{'positions':<12}{p['reference']:>10}{p['chaos']:>8}   differing {p['differing']}",
        "",
        f"core kills done        {result['kills']} of {result['kills_planned']} ({cores})",
        f"Redis restarts done    {result['redis_restarts']} of {result['redis_restarts_planned']}"
        f" (entries Redis lost: " + ", ".join(f"{k} {v}" for k, v in lost.items()) + ")",
        f"core crashes           {len(result['core_crashes'])}",
        f"AOF bytes dropped      {result['aof_bytes_dropped']} (power loss simulated)"
        if result["power_loss_s"]
        else "AOF bytes dropped      none (SIGKILL only: the kernel keeps what Redis wrote)",
        f"feed republished       {result['feed_republished']} bars (feed intact: "
        f"{'yes' if result['feed_intact'] else 'NO'})",
        f"wall time              {t['wall_s']:.1f} s (reference {t['reference_s']:.1f} s, "
        f"chaos run {t['chaos_s']:.1f} s)",
    ]
    for name, r in (("orders", o), ("fills", f)):
        for what, items in r["examples"].items():
            for item in items[:5]:
                lines.append(f"  {name} {what}: {item}")
    lines += [f"  - {line}" for line in result["failures"]]
    lines.append("OK" if result["ok"] else "FAILED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kills", type=int, default=DEFAULT_KILLS, help="core SIGKILLs (20)")
    parser.add_argument(
        "--redis-restarts", type=int, default=DEFAULT_REDIS_RESTARTS, help="Redis SIGKILLs (3)"
    )
    parser.add_argument("--symbols", type=int, default=None, help="tickers (default: all 88)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sharded", action="store_true", help="two cores, --shard 0/2 and 1/2")
    parser.add_argument(
        "--power-loss",
        action="store_true",
        help="each Redis kill also loses the last second of its append-only file (an OS crash)",
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="keep Redis folders and logs")
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="for the whole run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.kills < 0 or args.redis_restarts < 0:
        parser.error("--kills and --redis-restarts must not be negative")
    result = run_chaos(
        kills=args.kills, redis_restarts=args.redis_restarts, symbols=args.symbols,
        seed=args.seed, sharded=args.sharded, power_loss_s=POWER_LOSS_S if args.power_loss else 0.0,
        work_dir=args.work_dir, timeout_s=args.timeout_s,
    )  # fmt: skip
    print(json.dumps(result) if args.json else report(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
