"""`infoplane <stage>`: one subcommand per workflow rule, named like the rule and its output
folder under the output root (rule `probe` -> `infoplane probe` -> results/probe/...).

The rules in workflow/rules/ call these commands; so can a user, by hand, on any snapshot
folder. Settings come from `--settings` (the JSON of the stage's settings, as the workflow
passes them: `infoplane.config.stage_settings`) or from `--config` (a config file, validated
and filled with the schema's defaults); with neither, the schema's defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import InfoplaneError

log = logging.getLogger("infoplane")


# --------------------------------------------------------------------------- shared arguments


def _settings_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--settings", help="JSON of the stage's settings, as the workflow passes them")
    group.add_argument("--config", type=Path, help="a config file (e.g. config.yaml) to take the settings from")


def _job_arguments(parser: argparse.ArgumentParser, threads: int | None = None) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when this job sees a GPU, else CPU), cpu, cuda[:N]")
    parser.add_argument("--threads", type=int, default=threads, help="CPU threads for torch")


def _measurement_arguments(parser: argparse.ArgumentParser) -> None:
    """What the two measurement stages share: one run's snapshots against the eval sets of their splits."""
    parser.add_argument("--eval-set", type=Path, nargs="+", required=True,
                        help="the eval set of every split snapshotted: <output_root>/data/<dataset>/eval_set_<split>.pt")
    parser.add_argument(
        "--snapshots", type=Path, nargs="+", required=True,
        help="a run's snapshot files (snapshots/<split>/epoch<e>.pt) or its snapshots/ folder",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="the Parquet file to write")
    _settings_arguments(parser)
    _job_arguments(parser)


def _settings(args: argparse.Namespace, stage: str) -> dict:
    from . import config

    if args.settings is not None:
        try:
            return json.loads(args.settings)
        except json.JSONDecodeError as err:
            raise InfoplaneError(f"--settings is not valid JSON: {err}") from None
    return config.stage_settings(config.load(args.config), stage)


def _start_job(args: argparse.Namespace):
    from . import runtime

    return runtime.setup_job(args.threads, args.device)


# --------------------------------------------------------------------------- stages


def _data(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    parser.add_argument("--dataset", required=True, help="a registered data set, e.g. mnist5k")
    parser.add_argument("--split", default="test", help="whose images: test or train (infoplane.contracts.SPLITS)")
    parser.add_argument("--out", type=Path, required=True,
                        help="the eval-set file, e.g. results/data/mnist5k/eval_set_test.pt")
    _settings_arguments(parser)

    def run(args: argparse.Namespace) -> None:
        from . import contracts, data, runtime

        runtime.setup_logging()
        if args.split not in contracts.SPLITS:
            raise InfoplaneError(f"--split {args.split!r} is not a split; allowed: {', '.join(contracts.SPLITS)}")
        settings = _settings(args, "data")
        dataset = data.load(args.dataset, settings["root"], settings["download"])
        log.info(
            "%s: %d train / %d test images of shape %s, %d classes",
            args.dataset, len(dataset.train_y), len(dataset.test_y), dataset.in_shape, dataset.num_classes,
        )  # fmt: skip
        eval_set = data.eval_set(dataset, settings["eval_size"], args.split, settings.get("train_limit"))
        contracts.write_eval_set(args.out, eval_set)
        log.info("eval set of %d %s images written to %s", settings["eval_size"], args.split, args.out)

    return run


def _train(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    parser.add_argument("--run", required=True, help="dataset/arch/mode/seed<N>, e.g. mnist5k/lenet5/e2e/seed0")
    parser.add_argument("--eval-set", type=Path, nargs="+", required=True,
                        help="the eval set of every split to snapshot: <output_root>/data/<dataset>/eval_set_<split>.pt")
    parser.add_argument("--out-dir", type=Path, required=True, help="the run's folder, e.g. results/train/<run>")
    parser.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)  # tests of resume
    _settings_arguments(parser)
    _job_arguments(parser)

    def run(args: argparse.Namespace) -> None:
        from . import train
        from .contracts import Run

        try:
            run_id = Run.parse(args.run)
        except ValueError as err:
            raise InfoplaneError(str(err)) from None
        settings = _settings(args, "train")
        device = _start_job(args)
        train.train_run(run_id, settings, args.eval_set, args.out_dir, device, args.stop_after)

    return run


def _measure(args: argparse.Namespace, stage: str, measure_run: Callable, table) -> None:
    """What both measurement stages do: settings, device, measure every snapshot, write, log."""
    settings = _settings(args, stage)
    device = _start_job(args)
    start = time.perf_counter()
    frame = table.write(measure_run(args.eval_set, args.snapshots, settings, device), args.out)
    final = frame[frame["epoch"] == frame["epoch"].max()]
    log.info(
        "%s: %d rows (%d epochs, %d layers) in %.1f s; settings %s", stage, len(frame), frame["epoch"].nunique(),
        final["layer"].nunique(), time.perf_counter() - start, json.dumps(settings, sort_keys=True),
    )  # fmt: skip


def _dependence(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    _measurement_arguments(parser)

    def run(args: argparse.Namespace) -> None:
        from . import contracts, dependence

        _measure(args, "dependence", dependence.measure_run, contracts.DEPENDENCE)

    return run


def _probe(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    _measurement_arguments(parser)
    parser.set_defaults(threads=1)  # the fits are small: one thread is fastest

    def run(args: argparse.Namespace) -> None:
        from . import contracts, probe

        _measure(args, "probe", probe.probe_run, contracts.PROBES)

    return run


def _tables(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    from .contracts import TABLES

    for name in TABLES:
        parser.add_argument(f"--{name}", type=Path, nargs="*", default=[], help=f"per-run {name} tables")
    parser.add_argument("--out-dir", type=Path, required=True, help="the tables folder, e.g. results/tables")

    def run(args: argparse.Namespace) -> None:
        from . import runtime, tables

        runtime.setup_logging()
        written = tables.write_tables({name: getattr(args, name) for name in TABLES}, args.out_dir)
        log.info("tables: %s", ", ".join(str(p) for p in written.values()))

    return run


def _paper(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    parser.add_argument("--tables", type=Path, required=True, help="the tables folder, e.g. results/tables")
    parser.add_argument("--out-dir", type=Path, required=True, help="the paper folder, e.g. results/paper")
    parser.add_argument("--experiment", default="default", help="experiment name shown in every table header")

    def run(args: argparse.Namespace) -> None:
        from . import contracts, paper, runtime
        from .paper.claims import summary_line

        runtime.setup_logging()
        start = time.perf_counter()
        inputs = paper.Inputs.read(args.tables)
        written = paper.build(inputs, args.out_dir, args.experiment)
        claims = contracts.CLAIMS.read(written["claims"][0])
        summary = summary_line(claims)
        log.info(
            "paper outputs for %r in %.1f s: %d table files, %d figures; %s",
            args.experiment, time.perf_counter() - start, len(written["tables"]), len(written["figures"]), summary,
        )  # fmt: skip

    return run


#: name -> (reads, writes, argument setup returning the stage's function)
STAGES: dict[str, tuple[str, str, Callable]] = {
    "data": ("a data set (the embedded mnist5k, or torchvision's files under data.root)",
             "--out: the eval set of one split (<output_root>/data/<dataset>/eval_set_<split>.pt in the workflow)",
             _data),
    "train": ("the eval sets", "--out-dir (<output_root>/train/<run>/): metrics.parquet, "
              "snapshots/<split>/epoch<e>.pt, checkpoint/", _train),
    "dependence": ("the eval sets and one run's snapshots",
                   "--out: the run's dependence table (<output_root>/dependence/<run>.parquet in the workflow)",
                   _dependence),
    "probe": ("the eval sets and one run's snapshots",
              "--out: the run's linear-probe table (<output_root>/probe/<run>.parquet in the workflow)", _probe),
    "tables": ("every run's metrics, dependence and probe tables",
               "--out-dir (<output_root>/tables/): metrics.parquet, dependence.parquet, probes.parquet", _tables),
    "paper": ("--tables (<output_root>/tables/)", "--out-dir (<output_root>/paper/): the paper's tables, figures "
              "and claims", _paper),
}  # fmt: skip


def parser() -> tuple[argparse.ArgumentParser, dict[str, Callable]]:
    top = argparse.ArgumentParser(
        prog="infoplane",
        description="The stages of the infoplane workflow (each is the rule of the same name).",
        epilog="Tools: python -m infoplane.bench.dependence, python -m infoplane.bench.train, "
        "python -m infoplane.reportcheck REPORT.html",
    )
    sub = top.add_subparsers(dest="stage", required=True, metavar="stage")
    runners = {}
    for name, (reads, writes, setup) in STAGES.items():
        stage = sub.add_parser(
            name, help=f"reads {reads}; writes {writes}", description=f"Reads {reads}. Writes {writes}."
        )
        runners[name] = setup(stage)
    return top, runners


def main(argv: Sequence[str] | None = None) -> int:
    top, runners = parser()
    args = top.parse_args(argv)
    try:
        runners[args.stage](args)
    except (InfoplaneError, FileNotFoundError) as err:
        print(f"infoplane {args.stage}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
