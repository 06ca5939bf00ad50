"""Sample frames from recordings into a Label Studio import (thesis 3.1.2.2 - 3.1.2.3).

    python -m training.sample_frames --input DIR --out OUT [--scheme v2|v1] [--bins 12]
        [--bin-frames 600] [--seed 0] [--metadata meta.csv|meta.json] [--label-config C]
        [--document-root ROOT]

Input layout: each entry of DIR is one recording, named by its recording id:
- ``DIR/<id>.<video>``: a video file (anything PyAV decodes: mp4, avi, mkv, mov, webm, ...), one camera;
- ``DIR/<id>/`` holding frame images (.png .pgm .jpg .jpeg, in name order): one camera;
- ``DIR/<id>/`` holding video files or sub-folders of frames: one camera each, named by the
  file stem / folder name. Cameras are assumed synchronous; bins use the shortest camera.

Schemes: v2 (default) cuts each recording into ``bins`` equal bins, drops the first and the last,
assigns cameras to the remaining bins in rotation and takes each bin's middle frame. v1 cuts it into
bins of ``bin_frames`` frames (the incomplete tail is dropped), drops the first and the last bin
and takes one random frame per bin (seeded per recording), cameras again in rotation.

Output: ``OUT/frames/<id>/NN.png`` (greyscale) and ``OUT/tasks.json``. Frame URLs are
``/data/local-files/?d=<path of the frame relative to ROOT>``; ROOT (Label Studio's
LOCAL_FILES_DOCUMENT_ROOT) defaults to OUT's parent. Task data: frames, recording_id, subject_id
(from the metadata, else the recording id), cameras (the recording's cameras) and frame_cameras.

Metadata (optional): CSV with a ``recording_id`` column, or JSON (``{id: {...}}`` or a list of
objects with ``recording_id``); other columns are ``subject_id`` and label names; an empty value is
unknown. Known labels become the task's annotation, so a project starts with what is known.
"""
from __future__ import annotations

import argparse
import csv
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from training.schema import LabelSchema, load_label_config

IMAGE_EXTS = {".png", ".pgm", ".jpg", ".jpeg"}


class SampleError(ValueError):
    """Input or metadata that cannot be sampled; the message names the file and the problem."""


@dataclass(frozen=True)
class Camera:
    name: str
    video: Path | None = None
    images: tuple[Path, ...] = ()

    def length(self) -> int:
        if self.video is None:
            return len(self.images)
        with av.open(str(self.video)) as container:
            stream = container.streams.video[0]
            # the header count can be missing or wrong; counting packets is exact and needs no decoding
            return sum(1 for packet in container.demux(stream) if packet.size)

    def read(self, indices: list[int]) -> dict[int, Image.Image]:
        if self.video is None:
            return {i: Image.open(self.images[i]).convert("L") for i in indices}
        wanted, out = set(indices), {}
        with av.open(str(self.video)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    out[i] = frame.to_image().convert("L")
                if len(out) == len(wanted):
                    break
        return out


def _images(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS))


def discover(input_dir: Path) -> dict[str, list[Camera]]:
    """Recording id -> cameras (sorted by name), following the layout in the module doc."""
    if not input_dir.is_dir():
        raise SampleError(f"--input {input_dir} is not a folder")
    recordings: dict[str, list[Camera]] = {}
    for entry in sorted(input_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            if entry.suffix.lower() not in IMAGE_EXTS:
                recordings[entry.stem] = [Camera("0", video=entry)]
            continue
        images = _images(entry)
        if images:
            recordings[entry.name] = [Camera("0", images=images)]
            continue
        cams = [Camera(sub.name, images=_images(sub)) if sub.is_dir() else Camera(sub.stem, video=sub)
                for sub in sorted(entry.iterdir()) if not sub.name.startswith(".")]
        cams = [c for c in cams if c.video is not None or c.images]
        if not cams:
            raise SampleError(f"{entry}: no frames, videos or camera folders inside")
        recordings[entry.name] = cams
    if not recordings:
        raise SampleError(f"--input {input_dir} holds no recordings")
    return recordings


def v2_picks(n_frames: int, n_cameras: int, bins: int = 12) -> list[tuple[int, int]]:
    """(camera index, frame index) per kept bin: middle frame, cameras in rotation."""
    edges = np.linspace(0, n_frames, bins + 1)
    return [((k - 1) % n_cameras, int((edges[k] + edges[k + 1]) // 2)) for k in range(1, bins - 1)]


def v1_picks(n_frames: int, n_cameras: int, bin_frames: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(camera index, frame index) per kept full bin of bin_frames frames: one random frame each."""
    n_bins = n_frames // bin_frames
    return [((k - 1) % n_cameras, k * bin_frames + int(rng.integers(bin_frames))) for k in range(1, n_bins - 1)]


def load_metadata(path: Path, schema: LabelSchema) -> dict[str, dict[str, str]]:
    """Recording id -> {subject_id?, label: class} with empty values dropped; validated."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        raw = json.loads(text)
        rows = [{"recording_id": k, **v} for k, v in raw.items()] if isinstance(raw, dict) else raw
    else:
        rows = list(csv.DictReader(text.splitlines()))
    meta: dict[str, dict[str, str]] = {}
    for line, row in enumerate(rows, start=2 if path.suffix.lower() != ".json" else 1):
        where = f"{path} {'line' if path.suffix.lower() != '.json' else 'entry'} {line}"
        if not isinstance(row, dict) or not str(row.get("recording_id") or "").strip():
            raise SampleError(f"{where}: needs a recording_id")
        rid = str(row["recording_id"]).strip()
        if rid in meta:
            raise SampleError(f"{where}: recording_id {rid!r} appears twice")
        values = {}
        for key, value in row.items():
            value = "" if value is None else str(value).strip()
            if key == "recording_id" or not value:
                continue
            if key != "subject_id" and key not in schema:
                raise SampleError(f"{where}: column {key!r} is neither subject_id nor a label of the config {schema.names}")
            if key != "subject_id" and value not in schema[key].classes:
                raise SampleError(f"{where}: {key}={value!r} is not one of {list(schema[key].classes)}")
            values[key] = value
        meta[rid] = values
    return meta


def frame_url(path: Path, document_root: Path) -> str:
    try:
        rel = path.resolve().relative_to(document_root.resolve())
    except ValueError:
        raise SampleError(f"output {path} is not inside the document root {document_root}") from None
    return f"/data/local-files/?d={rel.as_posix()}"


def sample(input_dir, out_dir, scheme: str = "v2", bins: int = 12, bin_frames: int = 600, seed: int = 0,
           metadata: dict[str, dict[str, str]] | None = None, schema: LabelSchema | None = None,
           document_root=None) -> tuple[list[dict], list[str]]:
    """Sample every recording of input_dir into out_dir; returns (tasks, skipped-recording messages)."""
    if scheme not in ("v1", "v2") or bins < 3 or bin_frames < 1:
        raise SampleError(f"need scheme v1|v2, bins >= 3, bin_frames >= 1; got {scheme}, {bins}, {bin_frames}")
    schema = schema or load_label_config()
    metadata = metadata or {}
    out_dir = Path(out_dir)
    root = Path(document_root) if document_root else out_dir.resolve().parent
    tasks, skipped = [], []
    recordings = discover(Path(input_dir))
    for rid in sorted(set(metadata) - set(recordings)):
        skipped.append(f"{rid}: in the metadata but not in --input")
    for rid, cams in recordings.items():
        n = min(c.length() for c in cams)
        if scheme == "v2":
            picks = v2_picks(n, len(cams), bins) if n >= bins else []
        else:
            picks = v1_picks(n, len(cams), bin_frames, np.random.default_rng([seed, zlib.crc32(rid.encode())]))
        if not picks:
            need = bins if scheme == "v2" else 3 * bin_frames
            skipped.append(f"{rid}: {n} frames, scheme {scheme} needs at least {need}")
            continue
        folder = out_dir / "frames" / rid
        folder.mkdir(parents=True, exist_ok=True)
        images = {c: cams[c].read(sorted({i for cc, i in picks if cc == c})) for c in {c for c, _ in picks}}
        urls = []
        for k, (c, i) in enumerate(picks):
            path = folder / f"{k:02d}.png"
            images[c][i].save(path)
            urls.append(frame_url(path, root))
        known = metadata.get(rid, {})
        data = {schema.value_key: urls, "recording_id": rid, "subject_id": known.get("subject_id", rid),
                "cameras": [c.name for c in cams], "frame_cameras": [cams[c].name for c, _ in picks]}
        task = {"data": data}
        result = [{"from_name": name, "to_name": schema.object_name, "type": "choices", "value": {"choices": [cls]}}
                  for name, cls in known.items() if name != "subject_id"]
        if result:
            task["annotations"] = [{"result": result}]
        tasks.append(task)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tasks.json").write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    return tasks, skipped


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="sample frames of recordings into a Label Studio import")
    ap.add_argument("--input", required=True, help="folder of recordings (videos / frame folders)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--scheme", choices=["v2", "v1"], default="v2")
    ap.add_argument("--bins", type=int, default=12, help="v2: equal bins per recording (first/last dropped)")
    ap.add_argument("--bin-frames", type=int, default=600, help="v1: frames per bin")
    ap.add_argument("--seed", type=int, default=0, help="v1: random frame within each bin")
    ap.add_argument("--metadata", help="known labels: CSV or JSON keyed by recording_id")
    ap.add_argument("--label-config", help="labeling config XML (default: the repo's)")
    ap.add_argument("--document-root", help="Label Studio LOCAL_FILES_DOCUMENT_ROOT (default: OUT's parent)")
    args = ap.parse_args(argv)
    try:
        schema = load_label_config(args.label_config)
        meta = load_metadata(Path(args.metadata), schema) if args.metadata else None
        tasks, skipped = sample(args.input, args.out, args.scheme, args.bins, args.bin_frames, args.seed,
                                meta, schema, args.document_root)
    except (SampleError, av.error.FFmpegError) as exc:
        raise SystemExit(f"sample_frames: {exc}")
    for message in skipped:
        print(f"skipped {message}")
    print(f"wrote {len(tasks)} tasks to {Path(args.out) / 'tasks.json'} "
          f"({sum('annotations' in t for t in tasks)} with known labels)")


if __name__ == "__main__":
    main()
