"""Frame bytes -> model input (thesis 3.1.3), shared by training and the backend.

greyscale -> fit into a square of ``image_size`` without distortion or crop, black padding
-> x/128 - 1 (range [-1, 127/128], room for signed-int quantisation) -> optional standardisation.
The image is resized first and then padded (centred): the same picture as pad-then-resize,
but cheaper and without black bleeding into the border pixels.
"""
from __future__ import annotations

import io
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

DEFAULT_MAX_PIXELS = 50_000_000  # refuse larger images: decompression-bomb guard


class FrameDecodeError(ValueError):
    """The frame bytes are not a usable image (corrupt, truncated, unknown format, too large)."""


@dataclass(frozen=True)
class PreprocessConfig:
    image_size: int = 224  # side of the square model input
    standardize: bool = False  # apply (x - mean) / std after scaling to [-1, 127/128]
    mean: float = 0.0
    std: float = 1.0
    max_pixels: int = DEFAULT_MAX_PIXELS  # width * height above this is refused before decoding

    def __post_init__(self):
        if self.image_size < 8:
            raise ValueError(f"PreprocessConfig.image_size must be >= 8, got {self.image_size}")
        if self.std <= 0:
            raise ValueError(f"PreprocessConfig.std must be > 0, got {self.std}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def decode_frame(data: bytes, image_size: int, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode image bytes to a greyscale ("L") image at least ``image_size`` on its longer side
    (or its full size if smaller). JPEGs are decoded at a reduced scale (Image.draft) when that
    still keeps ``image_size`` on the longer side: about 2x faster for large frames."""
    try:
        with warnings.catch_warnings():
            # our own max_pixels check below decides; Pillow's warning would only add noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise FrameDecodeError(f"image is {w}x{h} = {w * h} pixels, above the limit of {max_pixels}")
            scale = image_size / max(w, h)
            if scale < 1:
                # draft keeps both sides >= the requested size, hence the longer side >= image_size
                img.draft("L", (math.ceil(w * scale), math.ceil(h * scale)))
            img.load()
            return to_greyscale(img)
    except FrameDecodeError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # PIL.UnidentifiedImageError and "image file is truncated" are OSErrors
        raise FrameDecodeError(f"cannot decode image ({len(data)} bytes): {exc}") from exc


def to_greyscale(img: Image.Image) -> Image.Image:
    """8-bit greyscale. 16-bit frames (PNG/PGM, common for NIR cameras) keep their top 8 bits:
    Pillow's own convert("L") would clip them to white."""
    if img.mode == "L":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        pixels = np.clip(np.asarray(img, dtype=np.int64), 0, 65535) >> 8
        return Image.fromarray(pixels.astype(np.uint8), "L")
    return img.convert("L")


def preprocess_image(img: Image.Image, cfg: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """Greyscale image -> float32 [S, S]: aspect kept, black-padded, scaled, optionally standardised."""
    img = to_greyscale(img)
    size = cfg.image_size
    w, h = img.size
    scale = size / max(w, h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    pixels = np.zeros((size, size), dtype=np.float32)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    pixels[top:top + new_h, left:left + new_w] = np.asarray(img, dtype=np.float32)
    pixels = pixels / 128.0 - 1.0
    if cfg.standardize:
        pixels = (pixels - cfg.mean) / cfg.std
    return pixels.astype(np.float32, copy=False)


def load_frame(data: bytes, cfg: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """Frame bytes -> float32 [S, S] model input."""
    return preprocess_image(decode_frame(data, cfg.image_size, max_pixels=cfg.max_pixels), cfg)


def pick_frame_indices(n_available: int, n: int) -> list[int]:
    """``n`` evenly spaced indices (the middle of ``n`` equal bins); all indices if n_available <= n."""
    if n_available < 0 or n < 1:
        raise ValueError(f"pick_frame_indices needs n_available >= 0 and n >= 1, got {n_available}, {n}")
    if n_available <= n:
        return list(range(n_available))
    # the frame nearest each bin's middle (bins are >= 1 frame wide, so it lies inside its bin)
    return [math.floor((i + 0.5) * n_available / n + 0.5) for i in range(n)]


def frames_to_batch(frames: list[bytes], n: int, cfg: PreprocessConfig = PreprocessConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Frame byte-strings -> (float32 [n, 1, S, S], float32 mask [n]) for one recording.

    More than ``n`` frames: evenly spaced ones are used. Fewer: the rest is zeros with mask 0.
    """
    size = cfg.image_size
    batch = np.zeros((n, 1, size, size), dtype=np.float32)
    mask = np.zeros(n, dtype=np.float32)
    for slot, idx in enumerate(pick_frame_indices(len(frames), n)):
        batch[slot, 0] = load_frame(frames[idx], cfg)
        mask[slot] = 1.0
    return batch, mask
