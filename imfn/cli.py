"""``imfn <verb>``: every pipeline step as a command that reads files and writes files.

The verbs, what each reads and writes, are the catalog :mod:`imfn.verbs`; this module builds their parser (only
the verb asked for gets its flags, so only its own dataclasses are imported and data and table steps start
without torch) and runs one as a job: its log, its provenance record, torch's threads and the device.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from imfn.flags import add_fields, parse_bool, parse_spec
from imfn.verbs import VERBS, resolve

log = logging.getLogger("imfn")


# -----------------------------------------------------------------------------
# the parser and the job around every verb


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Every verb's sub-parser; only the verb named in ``argv`` (all, without it) gets its flags, so that
    only its own dataclasses are imported."""
    parser = argparse.ArgumentParser(prog="imfn", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    chosen = next((word for word in (argv or []) if not word.startswith("-")), None)
    for name, spec in VERBS.items():
        p = sub.add_parser(name, help=spec.help, description=spec.help)
        if chosen not in (None, name):
            continue
        p.add_argument("--log", type=Path, help="also append the log to this file")
        if spec.device:
            p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
            p.add_argument(
                "--mixed-precision", type=parse_bool, default=True, help="on CUDA: bf16 autocast and TF32 (true|false)"
            )
        if spec.device or spec.threads:
            p.add_argument("--threads", type=int, default=1, help="torch threads")
        for flag, kwargs in parse_spec(spec.flags):
            p.add_argument(flag, **kwargs)
        for cls, prefix in spec.hyper:
            add_fields(p, resolve(cls), prefix)
    return parser


def _start_job(args: argparse.Namespace) -> None:
    """Logging and the provenance record; for the steps that run networks also torch's threads and the device."""
    from imfn import provenance
    from imfn.job import setup_logging, setup_torch

    setup_logging(args.log)
    spec = VERBS[args.verb]
    provenance.start(args.verb, args.log, getattr(args, "threads", None))
    if spec.device or spec.threads:
        setup_torch(args.threads)
    if not spec.device:
        provenance.record_device("cpu", "no network: CPU only")
        return
    from imfn.devices import configure_precision, describe_runtime, place

    args.device, placement = place(args.device)
    precision = configure_precision(args.device, args.mixed_precision)
    log.info("precision: %s", precision)
    provenance.record_device(
        args.device, f"{placement.kind}: {placement.reason}", precision, describe_runtime(args.device)
    )


def main(argv: list[str] | None = None) -> int:
    from imfn import provenance

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    if args.verb == "doctor":  # a report on stdout, not a pipeline job: no log, no provenance record
        VERBS["doctor"].run(args)
        return 0
    try:
        _start_job(args)
        VERBS[args.verb].run(args)
    except KeyboardInterrupt:
        provenance.finish(ok=False)
        raise
    except Exception as exc:
        # Known failures (bad input, NaN loss, missing file) get one clear line; anything else its traceback.
        expected = isinstance(exc, (FileNotFoundError, ValueError, RuntimeError, TimeoutError))
        log.error("imfn %s failed: %s", args.verb, exc, exc_info=not expected)
        provenance.finish(ok=False)
        return 1
    provenance.finish(ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
