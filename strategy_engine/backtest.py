"""The ``backtest`` command: one strategy over bar CSVs or a shipped data set.

Bar types take one CSV, pair types two (legs A and B, symbol ``"A/B"`` from the file names);
both run through the trading engine: signal at a close, fill at the next open, one unit.
Every type also runs on a shipped data set (:func:`backtest_dataset`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from core.backtest.runner import backtest, engine_backtest, resolve_config
from core.backtest.streams import bars_stream, pair_stream
from core.data.loaders import read_bars_frame
from core.errors import ConfigError, DataError
from core.strategies.base import DataKind
from core.strategies.catalogue import strategy_type
from pipelines.progress import progress

CSV_KINDS = (DataKind.BARS, DataKind.PAIR_BARS)


def parse_params(pairs: list[str]) -> dict[str, str]:
    """Turn ``["fast=10", "slow=30"]`` into a dict; a pair without ``=`` is a ConfigError."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param must look like name=value, was {pair!r}")
        params[key.strip()] = value.strip()
    return params


def backtest_csv(
    strategy: str,
    csv: Path | Sequence[Path],
    *,
    params: dict[str, Any],
    fee_bps: float = 0.0,
    allow_short: bool = False,
    skip_bad_rows: bool = False,
) -> dict[str, Any]:
    """Backtest ``strategy`` on bar CSVs: signal at a close, fill at the next open, one unit.

    Parameters
    ----------
    strategy
        A bar type (one CSV) or a pair type (two CSVs: leg A, then leg B).
    csv
        The file(s); a symbol is its file name without extension.
    params, fee_bps, allow_short
        Config overrides, the fee in bps of traded notional, turn on the short side.
    skip_bad_rows
        Drop unparsable rows instead of refusing the file.

    Returns
    -------
    dict
        The standard result (see :mod:`core.backtest.runner`). ``pnl`` is in price units
        marked to the last close, net of fees; returns are on a capital of the first bar's
        open (a pair: first open of A plus first open of B).
    """
    paths = [Path(csv)] if isinstance(csv, (str, Path)) else [Path(p) for p in csv]
    kind = strategy_type(strategy).spec.data_kind
    _check_csv_count(strategy, kind, paths)
    # Validate before reading data, so a bad flag fails fast; keep the canonical field names.
    config = resolve_config(strategy, params, allow_short=allow_short)
    frames, rejected = {}, 0
    for path in paths:
        frame, bad = _load_csv(path, skip_bad_rows)
        frames[path.stem] = frame
        rejected += bad
    if len(frames) != len(paths):
        raise ConfigError(f"the two legs must be different files, both were {paths[0].stem!r}")
    dataset = "+".join(p.name for p in paths)
    if kind is DataKind.PAIR_BARS:
        stream = pair_stream(strategy, dataset, frames, [f"{paths[0].stem}/{paths[1].stem}"])
    else:
        stream = bars_stream(strategy, dataset, frames)
    result = engine_backtest(stream, config, fee_bps=fee_bps)
    return {**result, "fee_bps": fee_bps, "rejected_rows": rejected}


def backtest_dataset(
    strategy: str,
    dataset: str,
    *,
    symbols: Sequence[str] = (),
    params: dict[str, Any],
    fee_bps: float = 0.0,
    allow_short: bool = False,
    fast: bool = False,
    quiet: bool = True,
) -> dict[str, Any]:
    """Backtest ``strategy`` on a shipped data set (see :func:`core.backtest.runner.backtest`)."""
    result = backtest(
        strategy,
        dataset=dataset,
        symbols=list(symbols) or None,
        params=params,
        fast=fast,
        fee_bps=fee_bps,
        allow_short=allow_short,
        watch=lambda events: progress(
            events, desc=f"{strategy} on {dataset}", quiet=quiet, total=len(events), unit="ev"
        ),
    )
    return {**result, "fee_bps": fee_bps}


def _check_csv_count(strategy: str, kind: DataKind, paths: list[Path]) -> None:
    if kind not in CSV_KINDS:
        home = strategy_type(strategy).spec.dataset
        raise ConfigError(
            f"strategy {strategy} consumes {kind.value} data, not bar CSVs: use --dataset {home}"
        )
    wanted = 2 if kind is DataKind.PAIR_BARS else 1
    if len(paths) != wanted:
        shape = "--csv A.csv --csv B.csv (or --csv-b)" if wanted == 2 else "one --csv"
        raise ConfigError(
            f"strategy {strategy} ({kind.value}) needs {shape}, was given {len(paths)} CSV(s)"
        )


def _load_csv(path: Path, skip_bad_rows: bool) -> tuple[pd.DataFrame, int]:
    loaded = read_bars_frame(path)
    if loaded.rejected and not skip_bad_rows:
        first = loaded.rejected[0]
        raise DataError(
            f"{path.name}: {len(loaded.rejected)} bad row(s), first at line {first.line}: "
            f"{first.reason} (fix them or pass --skip-bad-rows)"
        )
    if loaded.frame.empty:
        raise DataError(f"{path.name}: no bars to backtest")
    return loaded.frame, len(loaded.rejected)
