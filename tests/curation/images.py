"""Natural-looking test images and their degradations (used by the curation tests only).

``natural_image`` mixes the two statistics that make photographs hard for naive quality measures:
a 1/f ("pink") amplitude spectrum of textures and sharp occlusion edges of objects of many sizes,
under a smooth sky gradient. Degradations model the sensor faults the scorers must catch.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np


def pink_noise(rng: np.random.Generator, h: int, w: int, alpha: float = 1.0) -> np.ndarray:
    """Zero-mean, unit-std noise (h w) with a 1/f^alpha amplitude spectrum."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**alpha
    spec[0, 0] = 0
    n = np.fft.irfft2(spec, s=(h, w))
    return (n - n.mean()) / n.std()


def natural_image(seed: int, h: int = 180, w: int = 320, n_shapes: int | None = None) -> np.ndarray:
    """An RGB uint8 image (h w 3): sky gradient, textured ground, textured objects with sharp edges
    (``n_shapes`` objects; default 40 per 320 x 180 pixels)."""
    n = n_shapes if n_shapes is not None else max(1, round(40 * h * w / (320 * 180)))
    return _natural_image(seed, h, w, n).copy()


@functools.lru_cache(maxsize=64)
def _natural_image(seed: int, h: int, w: int, n_shapes: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float64)
    horizon = int(h * rng.uniform(0.3, 0.45))
    t = np.linspace(0, 1, horizon)[:, None]
    sky_top, sky_bot = np.array([0.35, 0.55, 0.85]), np.array([0.75, 0.82, 0.9])
    img[:horizon] = (sky_top * (1 - t) + sky_bot * t)[:, None, :]
    ground = 0.35 + 0.08 * pink_noise(rng, h - horizon, w)[..., None] * np.ones(3)
    img[horizon:] = ground * np.array([0.9, 0.9, 0.85])
    textures = [pink_noise(rng, h, w, 1.2) for _ in range(3)]
    for _ in range(n_shapes):
        colour = rng.uniform(0.05, 0.95, 3)
        size = max(2, int(rng.uniform(0.05, 0.5) * h))
        cx, cy = int(rng.uniform(0, w)), int(rng.uniform(horizon * 0.6, h))
        mask = np.zeros((h, w), np.uint8)
        if rng.random() < 0.5:
            cv2.rectangle(mask, (cx - size // 2, cy - size // 3), (cx + size // 2, cy + size // 3), 255, -1)
        else:
            pts = np.stack([cx + size * rng.uniform(-0.6, 0.6, 6), cy + size * rng.uniform(-0.5, 0.5, 6)], 1)
            cv2.fillPoly(mask, [cv2.convexHull(pts.astype(np.int32))], 255, lineType=cv2.LINE_AA)
        tex_full = textures[int(rng.integers(3))]
        shift = int(rng.integers(w))
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            continue
        sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))  # blend inside the shape's box only
        a = (mask[sl].astype(np.float64) / 255.0)[..., None]
        tex = 1 + 0.15 * np.roll(tex_full, shift, axis=1)[sl][..., None]
        img[sl] = img[sl] * (1 - a) + np.clip(colour * tex, 0, 1) * a
    img += 0.01 * rng.normal(size=img.shape)  # a little sensor noise, as in any photograph
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma) if sigma > 0 else img.copy()


def motion_blur(img: np.ndarray, length: int, angle_deg: float = 0.0) -> np.ndarray:
    if length <= 1:
        return img.copy()
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle_deg, 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    return cv2.filter2D(img, -1, k / k.sum())


def over_expose(img: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(img.astype(np.float64) * gain, 0, 255).astype(np.uint8)


def add_noise(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def haze(img: np.ndarray, amount: float, airlight: float = 200.0) -> np.ndarray:
    return np.clip(img * (1 - amount) + airlight * amount, 0, 255).astype(np.uint8)


def tint(img: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    return np.clip(img.astype(np.float64) * np.array(gains), 0, 255).astype(np.uint8)


def backlight(img: np.ndarray, strength: float, center: tuple[float, float] = (0.5, 0.15)) -> np.ndarray:
    """A sun glare of relative radius ``0.35 * strength`` with the scene darkened by ``1 - 0.6 strength``."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(xx - center[0] * w, yy - center[1] * h) / w
    glare = np.exp(-((r / max(0.35 * strength, 1e-3)) ** 2))[..., None]
    dark = img.astype(np.float64) * (1 - 0.6 * strength)
    return np.clip(dark + glare * 400 * strength, 0, 255).astype(np.uint8)


def lens_dirt(img: np.ndarray, coverage: float, seed: int = 0) -> np.ndarray:
    """Opaque, soft-edged dark-brown blobs covering about ``coverage`` of the image."""
    h, w = img.shape[:2]
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.float32)
    while mask.mean() < coverage * 0.9:
        r = int(rng.uniform(0.05, 0.12) * w)
        cv2.circle(mask, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), r, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.02 * w)[..., None]
    dirt = np.array([60.0, 45.0, 30.0])
    return np.clip(img * (1 - 0.9 * mask) + dirt * 0.9 * mask, 0, 255).astype(np.uint8)


def camera_frame(seed: int, h: int, w: int, quality: int = 90) -> np.ndarray:
    """What a healthy camera writes: the same scene at any resolution (40 objects, sizes relative
    to the frame), softened by the optics (Gaussian sigma 1 px), with sensor noise (1.5 grey
    levels) and saved as a quality-``quality`` JPEG."""
    return jpeg(add_noise(gaussian_blur(natural_image(seed, h, w, n_shapes=40), 1.0), 1.5, seed), quality)


def pil_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip through Pillow (the encoder the dataset writer uses), 4:2:0 chroma."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))
