"""CLI over the model directory.

    python -m backend.models add RUN/model.onnx [--version V] [--use]
    python -m backend.models list
    python -m backend.models use V

MODEL_DIR comes from --model-dir or the MODEL_DIR environment variable. Running workers pick up
a `use` within about a second, without a restart.
"""
from __future__ import annotations

import argparse
import os
import sys

from backend.registry import ModelRegistry, RegistryError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.models", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=os.environ.get("MODEL_DIR", "models"))
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="copy a model.onnx in as a new version (current if none is)")
    add.add_argument("onnx_path")
    add.add_argument("--version", help="version id (default: recmeta model_version, else a timestamp)")
    add.add_argument("--use", action="store_true", help="make the new version current")
    sub.add_parser("list", help="list versions; * marks the current one")
    use = sub.add_parser("use", help="make a version current")
    use.add_argument("version")
    args = parser.parse_args(argv)

    registry = ModelRegistry(args.model_dir)
    try:
        if args.command == "add":
            version = registry.add(args.onnx_path, args.version, make_current=args.use)
            print(f"added {version}" + (" (current)" if registry.current() == version else ""))
        elif args.command == "use":
            registry.use(args.version)
            print(f"current: {args.version}")
        else:
            current = registry.current()
            for info in registry.versions():
                mark = "*" if info.version == current else " "
                print(f"{mark} {info.version}" + ("  [int8]" if info.has_int8 else ""))
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
