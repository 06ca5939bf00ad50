"""Near-duplicate frames across subjects, found by perceptual hashing (imagehash.phash, 64 bits).

Why: the same picture under two subject ids (re-uploads, augmented copies, a public set that
already contains the "private" one - the leakage finding of seed 001) puts the same face in train
and test. split.py merges the subjects of every group found here into one unit.

Search: two hashes within Hamming distance t agree exactly on at least one of t+1 disjoint bit
bands (pigeonhole), so candidates come from buckets keyed by (band, band value) and are then
checked exactly; identical hashes are collapsed first. No O(n^2) scan.

    python -m training.near_duplicates --export E --data-root D [--label-config C] [--split split.json]
        [--threshold 4]

prints the cross-subject groups and, given --split, the groups that cross splits. Frames are read
through a callable ref -> bytes (``local_reader(document_root)`` here, or a frame_source fetcher).
"""
from __future__ import annotations

import argparse
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import imagehash
from PIL import Image

HASH_BITS = 64


@dataclass(frozen=True)
class DuplicateGroup:
    frames: tuple[str, ...]  # frame refs linked by near-duplicate pairs
    recordings: tuple[str, ...]
    subjects: tuple[str, ...]


def local_reader(document_root: str | Path) -> Callable[[str], bytes]:
    """Reads /data/local-files/?d=<rel> URLs and plain paths below document_root."""
    root = Path(document_root).resolve()

    def read(ref: str) -> bytes:
        rel = parse_qs(urlparse(ref).query).get("d", [None])[0] if ref.startswith("/data/local-files/") else ref
        if not rel:
            raise ValueError(f"frame ref {ref!r} has no ?d= path")
        path = (root / rel).resolve()
        if not path.is_relative_to(root):
            raise ValueError(f"frame ref {ref!r} points outside the data root {root}")
        return path.read_bytes()

    return read


def phash_int(data: bytes) -> int:
    return int(str(imagehash.phash(Image.open(io.BytesIO(data)))), 16)


def hash_frames(refs: Iterable[str], read: Callable[[str], bytes]) -> tuple[dict[str, int], dict[str, str]]:
    """Perceptual hash per frame ref, and the refs that could not be read or decoded (ref -> reason)."""
    hashes, errors = {}, {}
    for ref in refs:
        try:
            hashes[ref] = phash_int(read(ref))
        except Exception as exc:  # one unreadable frame must not stop a report over thousands
            errors[ref] = f"{type(exc).__name__}: {exc}"
    return hashes, errors


def near_pairs(hashes: list[int], threshold: int) -> list[tuple[int, int]]:
    """Index pairs (i < j) with Hamming distance <= threshold, by band bucketing."""
    if not 0 <= threshold < HASH_BITS:
        raise ValueError(f"threshold must be in [0, {HASH_BITS}), got {threshold}")
    by_value: dict[int, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        by_value[h].append(i)
    pairs = [(a, b) for members in by_value.values() for k, a in enumerate(members) for b in members[k + 1:]]
    values = sorted(by_value)
    bands = threshold + 1
    edges = [round(b * HASH_BITS / bands) for b in range(bands + 1)]
    seen: set[tuple[int, int]] = set()
    for b in range(bands):
        width = edges[b + 1] - edges[b]
        buckets: dict[int, list[int]] = defaultdict(list)
        for v, value in enumerate(values):
            buckets[(value >> edges[b]) & ((1 << width) - 1)].append(v)
        for bucket in buckets.values():
            for k, u in enumerate(bucket):
                for w in bucket[k + 1:]:
                    if (u, w) not in seen and (values[u] ^ values[w]).bit_count() <= threshold:
                        seen.add((u, w))
    for u, w in seen:
        pairs += [(min(a, b), max(a, b)) for a in by_value[values[u]] for b in by_value[values[w]]]
    return sorted(pairs)


def duplicate_groups(recordings, read: Callable[[str], bytes], threshold: int = 4,
                     hashes: dict[str, int] | None = None) -> list[DuplicateGroup]:
    """Groups of frames linked by near-duplicate pairs between DIFFERENT subjects."""
    owner = {ref: rec for rec in recordings for ref in rec.frames}
    if hashes is None:
        hashes, _ = hash_frames(owner, read)
    refs = sorted(hashes)
    parent = list(range(len(refs)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in near_pairs([hashes[r] for r in refs], threshold):
        if owner[refs[i]].subject_id != owner[refs[j]].subject_id:
            parent[max(find(i), find(j))] = min(find(i), find(j))
    members: dict[int, list[str]] = defaultdict(list)
    for i, ref in enumerate(refs):
        members[find(i)].append(ref)
    groups = []
    for frames in members.values():
        subjects = sorted({owner[f].subject_id for f in frames})
        if len(subjects) > 1:
            groups.append(DuplicateGroup(tuple(frames), tuple(sorted({owner[f].recording_id for f in frames})),
                                         tuple(subjects)))
    return sorted(groups, key=lambda g: g.frames)


def duplicate_subject_groups(recordings, read: Callable[[str], bytes], threshold: int = 4) -> list[list[str]]:
    """Subject ids that share near-duplicate frames (input for split.split_subjects)."""
    return [list(g.subjects) for g in duplicate_groups(recordings, read, threshold)]


def main(argv: list[str] | None = None) -> None:
    from training.export_reader import read_export
    from training.schema import load_label_config

    ap = argparse.ArgumentParser(description="near-duplicate frames across subjects (and splits)")
    ap.add_argument("--export", required=True)
    ap.add_argument("--data-root", required=True, help="LOCAL_FILES_DOCUMENT_ROOT the frame URLs are relative to")
    ap.add_argument("--label-config", help="labeling config XML (default: the repo's)")
    ap.add_argument("--split", help="split.json: also report groups that cross splits")
    ap.add_argument("--threshold", type=int, default=4, help="max Hamming distance of 64-bit phashes")
    args = ap.parse_args(argv)
    try:
        recordings = read_export(args.export, load_label_config(args.label_config)).recordings
        where = {rid: name for name, rids in json.loads(Path(args.split).read_text())["recordings"].items()
                 for rid in rids} if args.split else None
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise SystemExit(f"training.near_duplicates: cannot read the export or split: {exc!r}")
    hashes, errors = hash_frames([f for r in recordings for f in r.frames], local_reader(args.data_root))
    for ref, reason in sorted(errors.items()):
        print(f"unreadable frame {ref}: {reason}")
    groups = duplicate_groups(recordings, None, args.threshold, hashes)
    print(f"{len(hashes)} frames hashed, {len(groups)} cross-subject near-duplicate groups "
          f"(threshold {args.threshold}/{HASH_BITS} bits)")
    for g in groups:
        print(f"  subjects {list(g.subjects)}: recordings {list(g.recordings)}")
    if where is not None:
        crossing = [g for g in groups if len({where.get(r, "unassigned") for r in g.recordings}) > 1]
        print(f"{len(crossing)} groups cross splits")
        for g in crossing:
            print("  " + ", ".join(f"{r} ({where.get(r, 'unassigned')})" for r in g.recordings))


if __name__ == "__main__":
    main()
