"""Speed of the ILP subject split: 2,000 generated subjects (1-5 recordings each, the eleven labels,
each answered on ~40 % of the recordings) must split in under 30 s.

    python benchmarks/split_speed.py [--subjects 2000] [--seed 0]
"""
import argparse
import sys
import time

from training.schema import load_label_config
from training.split import split_subjects
from training.split_report import summary
from training.synthetic import random_recordings

LIMIT_S = 30.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    schema = load_label_config()
    recordings = random_recordings(schema, args.subjects, seed=args.seed)
    start = time.perf_counter()
    result = split_subjects(recordings, schema, seed=args.seed)
    elapsed = time.perf_counter() - start
    print(summary(result))
    print(f"{args.subjects} subjects, {len(recordings)} recordings: split in {elapsed:.2f} s (limit {LIMIT_S:.0f} s)")
    return 0 if elapsed < LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
