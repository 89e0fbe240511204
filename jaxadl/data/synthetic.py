"""Procedural traffic signs: an offline, deterministic stand-in for GTSRB (43 classes).

Each class is a template drawn once with PIL at high resolution (sign shape, border and fill colours,
an inner glyph: speed-limit digits, arrows, pictograms from lines) and box-downsampled with
premultiplied alpha. Every sample then gets, fully vectorised in numpy: a random affine pose
(translation, scale, rotation, aspect and shear) sampled at 2x and box-reduced (antialiasing), a
cluttered background (gradient, soft blobs, lines), sign fading, occasional partial occlusion,
brightness / contrast / colour cast / gamma, mild blur and gaussian noise. Several classes differ
only by their glyph (the eight speed limits, the warning triangles), as in the real data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from jaxadl.data.base import Dataset, Split
from jaxadl.data.signs import CLASS_NAMES, NUM_CLASSES  # noqa: F401  (re-exported)

_SIGN_RADIUS = 0.43  # sign radius as a fraction of the image side at scale 1
_SUPERSAMPLE = 2  # pose warp is sampled at this multiple of the output size, then box-reduced
_DRAW_FACTOR = 4  # templates are drawn at this multiple of the warp resolution
_CHUNK = 1024  # samples processed at once (bounds memory; fixed so results never depend on it)

RGB = tuple[int, int, int]
RED: RGB = (200, 25, 35)
WHITE: RGB = (240, 240, 236)
BLUE: RGB = (25, 75, 175)
YELLOW: RGB = (245, 185, 20)
BLACK: RGB = (20, 20, 24)
GREY: RGB = (130, 130, 130)
GREEN: RGB = (30, 150, 60)

# 5x7 bitmap glyphs for digits and STOP, so no font file (and no Pillow-version dependence) is needed.
_FONT: dict[str, tuple[str, ...]] = {
    "0": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "1": ("..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "2": (".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"),
    "3": ("####.", "....#", "....#", ".###.", "....#", "....#", "####."),
    "5": ("#####", "#....", "####.", "....#", "....#", "#...#", ".###."),
    "6": ("..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."),
    "7": ("#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."),
    "8": (".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."),
    "S": (".####", "#....", "#....", ".###.", "....#", "....#", "####."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
}

Point = tuple[float, float]


class _Pen:
    """Draws in sign units (centre 0, radius 1, y down) onto a square RGBA canvas."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.img)
        self.unit = _SIGN_RADIUS * size

    def px(self, p: Point) -> tuple[float, float]:
        """Sign units to pixel coordinates."""
        return (self.size / 2 + p[0] * self.unit, self.size / 2 + p[1] * self.unit)

    def w(self, width: float) -> int:
        """A width in sign units, in pixels (at least 1)."""
        return max(1, round(width * self.unit))

    def poly(self, pts: Sequence[Point], fill: RGB) -> None:
        self.draw.polygon([self.px(p) for p in pts], fill=fill + (255,))

    def regular(self, n: int, radius: float, fill: RGB, rot: float = 0.0) -> None:
        """A regular n-gon, first vertex at angle `rot` (degrees, 0 = right, y down)."""
        a = [math.radians(rot + 360 * i / n) for i in range(n)]
        self.poly([(radius * math.cos(t), radius * math.sin(t)) for t in a], fill)

    def disc(self, c: Point, r: float, fill: RGB, ry: float | None = None) -> None:
        ry = r if ry is None else ry
        (x0, y0), (x1, y1) = self.px((c[0] - r, c[1] - ry)), self.px((c[0] + r, c[1] + ry))
        self.draw.ellipse([x0, y0, x1, y1], fill=fill + (255,))

    def line(self, pts: Sequence[Point], width: float, fill: RGB) -> None:
        self.draw.line([self.px(p) for p in pts], fill=fill + (255,), width=self.w(width), joint="curve")
        for p in (pts[0], pts[-1]):  # round caps
            self.disc(p, width / 2, fill)

    def arc(self, c: Point, r: float, start: float, end: float, width: float, fill: RGB) -> None:
        """An arc of circle (angles in degrees, clockwise on screen from +x)."""
        n = max(4, int(abs(end - start) / 6))
        pts = [
            (c[0] + r * math.cos(math.radians(t)), c[1] + r * math.sin(math.radians(t)))
            for t in np.linspace(start, end, n)
        ]
        self.line(pts, width, fill)

    def arrow(self, pts: Sequence[Point], width: float, fill: RGB, head: float = 0.26) -> None:
        """A polyline ending in a triangular head at its last point."""
        (x0, y0), (x1, y1) = pts[-2], pts[-1]
        d = math.hypot(x1 - x0, y1 - y0)
        ux, uy = (x1 - x0) / d, (y1 - y0) / d
        base = (x1 - ux * head, y1 - uy * head)
        self.line([*pts[:-1], base], width, fill)
        hw = head * 0.75
        self.poly(
            [(x1, y1), (base[0] - uy * hw, base[1] + ux * hw), (base[0] + uy * hw, base[1] - ux * hw)], fill
        )

    def text(self, s: str, c: Point, height: float, fill: RGB, char_w: float | None = None) -> None:
        """Bitmap text centred on `c`; cells are height/7 tall and char_w/5 wide."""
        ch = height / 7
        cw = (char_w if char_w is not None else height * 0.6) / 5
        gap = cw
        total = len(s) * 5 * cw + (len(s) - 1) * gap
        x = c[0] - total / 2
        for letter in s:
            for r, row in enumerate(_FONT[letter]):
                for k, cell in enumerate(row):
                    if cell == "#":
                        (a0, b0) = self.px((x + k * cw, c[1] - height / 2 + r * ch))
                        (a1, b1) = self.px((x + (k + 1) * cw, c[1] - height / 2 + (r + 1) * ch))
                        self.draw.rectangle([a0, b0, a1 - 1, b1 - 1], fill=fill + (255,))
            x += 5 * cw + gap


# --- sign bodies -----------------------------------------------------------------------------------


def _ring(p: _Pen, fill: RGB = WHITE, ring: RGB = RED, inner: float = 0.74) -> None:
    p.disc((0, 0), 1.0, ring)
    p.disc((0, 0), inner, fill)


def _end_ring(p: _Pen) -> None:
    p.disc((0, 0), 1.0, GREY)
    p.disc((0, 0), 0.93, WHITE)


def _triangle(p: _Pen, up: bool = True) -> None:
    rot = -90 if up else 90
    p.regular(3, 1.1, RED, rot)
    p.regular(3, 0.72, WHITE, rot)


def _blue(p: _Pen) -> None:
    p.disc((0, 0), 1.0, BLUE)


def _stripes(p: _Pen, n: int, colour: RGB = BLACK) -> None:
    for k in range(n):
        o = (k - (n - 1) / 2) * 0.11
        p.line([(-0.62 + o, 0.62 + o), (0.62 + o, -0.62 + o)], 0.06, colour)


# --- pictograms ------------------------------------------------------------------------------------


def _car(p: _Pen, cx: float, cy: float, colour: RGB, s: float = 1.0) -> None:
    p.poly([(cx - 0.2 * s, cy - 0.05 * s), (cx + 0.2 * s, cy - 0.05 * s),
            (cx + 0.2 * s, cy + 0.2 * s), (cx - 0.2 * s, cy + 0.2 * s)], colour)  # fmt: skip
    p.poly([(cx - 0.13 * s, cy - 0.22 * s), (cx + 0.13 * s, cy - 0.22 * s),
            (cx + 0.17 * s, cy - 0.05 * s), (cx - 0.17 * s, cy - 0.05 * s)], colour)  # fmt: skip
    p.disc((cx - 0.12 * s, cy + 0.22 * s), 0.06 * s, colour)
    p.disc((cx + 0.12 * s, cy + 0.22 * s), 0.06 * s, colour)


def _truck(p: _Pen, cx: float, cy: float, colour: RGB, s: float = 1.0) -> None:
    p.poly([(cx - 0.24 * s, cy - 0.3 * s), (cx + 0.1 * s, cy - 0.3 * s),
            (cx + 0.1 * s, cy + 0.18 * s), (cx - 0.24 * s, cy + 0.18 * s)], colour)  # fmt: skip
    p.poly([(cx + 0.13 * s, cy - 0.1 * s), (cx + 0.24 * s, cy - 0.1 * s),
            (cx + 0.28 * s, cy + 0.18 * s), (cx + 0.13 * s, cy + 0.18 * s)], colour)  # fmt: skip
    p.disc((cx - 0.15 * s, cy + 0.22 * s), 0.07 * s, colour)
    p.disc((cx + 0.18 * s, cy + 0.22 * s), 0.07 * s, colour)


def _person(p: _Pen, cx: float, cy: float, s: float = 1.0, stride: float = 0.14) -> None:
    p.disc((cx, cy - 0.34 * s), 0.08 * s, BLACK)
    p.line([(cx, cy - 0.24 * s), (cx - 0.02 * s, cy + 0.02 * s)], 0.1 * s, BLACK)
    p.line([(cx - 0.02 * s, cy + 0.02 * s), (cx - stride * s, cy + 0.3 * s)], 0.07 * s, BLACK)
    p.line([(cx - 0.02 * s, cy + 0.02 * s), (cx + stride * s, cy + 0.3 * s)], 0.07 * s, BLACK)
    p.line(
        [(cx - 0.13 * s, cy - 0.02 * s), (cx, cy - 0.18 * s), (cx + 0.13 * s, cy - 0.06 * s)], 0.06 * s, BLACK
    )


def _speed(value: str) -> Callable[[_Pen], None]:
    def draw(p: _Pen) -> None:
        _ring(p)
        if len(value) == 2:
            p.text(value, (0, 0), 0.72, BLACK, char_w=0.42)
        else:
            p.text(value, (0, 0), 0.66, BLACK, char_w=0.3)

    return draw


def _end_speed(p: _Pen) -> None:
    _end_ring(p)
    p.text("80", (0, 0), 0.72, GREY, char_w=0.42)
    _stripes(p, 3)


def _no_passing(p: _Pen, truck: bool = False, end: bool = False) -> None:
    if end:
        _end_ring(p)
    else:
        _ring(p)
    left, right = (GREY, GREY) if end else (RED if truck else BLACK, BLACK if truck else RED)
    if truck:
        _truck(p, -0.26, 0.05, left, 0.95)
    else:
        _car(p, -0.25, 0.05, left)
    _car(p, 0.25, 0.05, right)
    if end:
        _stripes(p, 3)


def _priority(p: _Pen) -> None:
    p.regular(4, 1.0, WHITE)
    p.regular(4, 0.9, GREY)
    p.regular(4, 0.84, WHITE)
    p.regular(4, 0.62, YELLOW)


def _yield(p: _Pen) -> None:
    _triangle(p, up=False)


def _stop(p: _Pen) -> None:
    p.regular(8, 1.0, WHITE, 22.5)
    p.regular(8, 0.92, RED, 22.5)
    p.text("STOP", (0, 0), 0.42, WHITE, char_w=0.27)


def _no_entry(p: _Pen) -> None:
    p.disc((0, 0), 1.0, RED)
    p.poly([(-0.66, -0.15), (0.66, -0.15), (0.66, 0.15), (-0.66, 0.15)], WHITE)


def _warning(glyph: Callable[[_Pen], None]) -> Callable[[_Pen], None]:
    def draw(p: _Pen) -> None:
        _triangle(p)
        glyph(p)

    return draw


def _caution(p: _Pen) -> None:
    p.line([(0, -0.28), (0, 0.08)], 0.13, BLACK)
    p.disc((0, 0.25), 0.08, BLACK)


def _crossroads(p: _Pen) -> None:
    p.line([(0, -0.32), (0, 0.32)], 0.15, BLACK)
    p.line([(-0.3, -0.02), (0.3, -0.02)], 0.08, BLACK)


def _curve(sign: float) -> Callable[[_Pen], None]:
    def draw(p: _Pen) -> None:
        p.arrow([(0.12 * sign, 0.33), (0.12 * sign, 0.02), (0.04 * sign, -0.12), (-0.26 * sign, -0.24)], 0.09,
                BLACK, head=0.16)  # fmt: skip

    return draw


def _double_curve(p: _Pen) -> None:
    p.arrow([(-0.12, 0.34), (-0.12, 0.16), (0.14, 0.0), (0.14, -0.12), (-0.02, -0.3)], 0.08, BLACK, head=0.14)


def _bumpy(p: _Pen) -> None:
    p.arc((-0.17, 0.22), 0.16, 180, 360, 0.09, BLACK)
    p.arc((0.17, 0.22), 0.16, 180, 360, 0.09, BLACK)


def _slippery(p: _Pen) -> None:
    _car(p, 0.0, -0.12, BLACK, 0.95)
    p.line([(-0.28, 0.18), (-0.16, 0.32), (-0.05, 0.2)], 0.06, BLACK)
    p.line([(0.05, 0.2), (0.16, 0.32), (0.28, 0.18)], 0.06, BLACK)


def _narrows(p: _Pen) -> None:
    p.line([(-0.16, 0.34), (-0.16, -0.3)], 0.08, BLACK)
    p.line([(0.2, 0.34), (0.2, 0.06), (0.06, -0.08), (0.06, -0.3)], 0.08, BLACK)


def _road_work(p: _Pen) -> None:
    p.disc((0.02, -0.28), 0.08, BLACK)
    p.line([(0.0, -0.18), (-0.1, 0.1), (-0.2, 0.32)], 0.1, BLACK)
    p.line([(-0.1, 0.1), (0.02, 0.32)], 0.08, BLACK)
    p.line([(-0.02, -0.1), (0.2, 0.04), (0.3, 0.26)], 0.05, BLACK)
    p.poly([(0.14, 0.34), (0.3, 0.16), (0.44, 0.34)], BLACK)


def _signals(p: _Pen) -> None:
    p.poly([(-0.12, -0.36), (0.12, -0.36), (0.12, 0.36), (-0.12, 0.36)], BLACK)
    for y, c in ((-0.23, RED), (0.0, YELLOW), (0.23, GREEN)):
        p.disc((0, y), 0.085, c)


def _pedestrian(p: _Pen) -> None:
    _person(p, 0.0, 0.04, 1.05)


def _children(p: _Pen) -> None:
    _person(p, -0.13, 0.04, 0.95, 0.1)
    _person(p, 0.16, 0.1, 0.75, 0.12)


def _bicycle(p: _Pen) -> None:
    p.arc((-0.22, 0.16), 0.14, 0, 360, 0.05, BLACK)
    p.arc((0.22, 0.16), 0.14, 0, 360, 0.05, BLACK)
    p.line([(-0.22, 0.16), (-0.04, -0.1), (0.16, -0.1), (0.22, 0.16)], 0.05, BLACK)
    p.line([(-0.04, -0.1), (0.02, 0.16), (0.16, -0.1)], 0.05, BLACK)
    p.disc((0.02, -0.3), 0.07, BLACK)


def _snow(p: _Pen) -> None:
    for a in (90, 30, -30):
        t = math.radians(a)
        dx, dy = 0.3 * math.cos(t), 0.3 * math.sin(t)
        p.line([(-dx, 0.04 - dy), (dx, 0.04 + dy)], 0.06, BLACK)


def _deer(p: _Pen) -> None:
    p.poly([(-0.25, 0.0), (0.14, -0.14), (0.2, 0.02), (-0.2, 0.14)], BLACK)
    p.line([(0.14, -0.1), (0.28, -0.3)], 0.08, BLACK)
    p.line([(0.28, -0.3), (0.22, -0.42), (0.16, -0.46)], 0.04, BLACK)
    p.line([(0.28, -0.3), (0.36, -0.44)], 0.04, BLACK)
    for x0, x1 in ((-0.2, -0.3), (-0.12, -0.06), (0.12, 0.1), (0.18, 0.3)):
        p.line([(x0, 0.08), (x1, 0.34)], 0.05, BLACK)


def _end_all(p: _Pen) -> None:
    _end_ring(p)
    _stripes(p, 5)


def _mandatory(glyph: Callable[[_Pen], None]) -> Callable[[_Pen], None]:
    def draw(p: _Pen) -> None:
        _blue(p)
        glyph(p)

    return draw


def _turn(sign: float) -> Callable[[_Pen], None]:
    def draw(p: _Pen) -> None:
        p.arrow([(-0.18 * sign, 0.55), (-0.18 * sign, -0.05), (0.58 * sign, -0.05)], 0.16, WHITE, head=0.3)

    return draw


def _ahead(p: _Pen) -> None:
    p.arrow([(0, 0.6), (0, -0.6)], 0.17, WHITE, head=0.32)


def _straight_or(sign: float) -> Callable[[_Pen], None]:
    def draw(p: _Pen) -> None:
        p.arrow([(-0.14 * sign, 0.6), (-0.14 * sign, -0.6)], 0.13, WHITE, head=0.28)
        p.arrow([(-0.14 * sign, 0.22), (0.02 * sign, 0.0), (0.58 * sign, 0.0)], 0.13, WHITE, head=0.28)

    return draw


def _keep(sign: float) -> Callable[[_Pen], None]:
    def draw(p: _Pen) -> None:
        p.arrow([(-0.38 * sign, -0.38), (0.42 * sign, 0.42)], 0.17, WHITE, head=0.34)

    return draw


def _roundabout(p: _Pen) -> None:
    for k in range(3):
        a0 = -90 + 120 * k
        p.arc((0, 0), 0.44, a0 + 10, a0 + 80, 0.12, WHITE)
        t = math.radians(a0 + 80)
        c, s = math.cos(t), math.sin(t)
        tip = (0.44 * c - 0.22 * s, 0.44 * s + 0.22 * c)
        p.poly([(0.26 * c, 0.26 * s), (0.62 * c, 0.62 * s), tip], WHITE)


_DRAWERS: tuple[Callable[[_Pen], None], ...] = (
    _speed("20"), _speed("30"), _speed("50"), _speed("60"), _speed("70"), _speed("80"), _end_speed,
    _speed("100"), _speed("120"), _no_passing, lambda p: _no_passing(p, truck=True),
    _warning(_crossroads), _priority, _yield, _stop, _ring,
    lambda p: (_ring(p), _truck(p, 0.0, 0.02, BLACK, 1.25)), _no_entry, _warning(_caution),
    _warning(_curve(1.0)), _warning(_curve(-1.0)), _warning(_double_curve), _warning(_bumpy),
    _warning(_slippery), _warning(_narrows), _warning(_road_work), _warning(_signals),
    _warning(_pedestrian), _warning(_children), _warning(_bicycle), _warning(_snow), _warning(_deer),
    _end_all, _mandatory(_turn(1.0)), _mandatory(_turn(-1.0)), _mandatory(_ahead),
    _mandatory(_straight_or(1.0)), _mandatory(_straight_or(-1.0)), _mandatory(_keep(1.0)),
    _mandatory(_keep(-1.0)), _mandatory(_roundabout), lambda p: _no_passing(p, end=True),
    lambda p: _no_passing(p, truck=True, end=True),
)  # fmt: skip
assert len(_DRAWERS) == NUM_CLASSES == len(CLASS_NAMES)


def class_templates(size: int) -> np.ndarray:
    """The 43 signs front-on at scale 1: float32 [43, size, size, 4], premultiplied RGB and alpha."""
    big = size * _DRAW_FACTOR
    out = np.empty((NUM_CLASSES, size, size, 4), np.float32)
    for k, draw in enumerate(_DRAWERS):
        pen = _Pen(big)
        draw(pen)
        a = np.asarray(pen.img, np.float32) / 255.0
        a[..., :3] *= a[..., 3:]
        out[k] = a.reshape(size, _DRAW_FACTOR, size, _DRAW_FACTOR, 4).mean(axis=(1, 3))
    return out


# --- per-sample rendering --------------------------------------------------------------------------


def _pack(templates: np.ndarray) -> np.ndarray:
    """Templates float [K, T, T, 4] in [0, 1] as a flat uint32 RGBA table [K * (T + 2) ** 2].

    Each template gets a transparent one-pixel border; one gather fetches a whole RGBA pixel.
    """
    q = np.pad(np.round(templates * 255).astype(np.uint8), ((0, 0), (1, 1), (1, 1), (0, 0)))
    return np.ascontiguousarray(q).reshape(-1, 4).view(np.uint32).ravel()


def _warp(
    table: np.ndarray, t: int, labels: np.ndarray, inv: np.ndarray, shift: np.ndarray, out: int
) -> np.ndarray:
    """Nearest-neighbour inverse-affine sampling of each sample's template: uint8 [n, out, out, 4].

    table: `_pack` of templates of side t; inv: [n, 2, 2] maps output offsets from the image centre
    (pixels) to template offsets; shift: [n, 2] is the sign centre's offset in output pixels. Outside
    the template everything is transparent. Sampled at a multiple of the final size, then box-reduced.
    """
    g = np.arange(out, dtype=np.float32) + 0.5 - out / 2
    dx = g[None, None, :] - shift[:, 0, None, None]
    dy = g[None, :, None] - shift[:, 1, None, None]
    u = inv[:, 0, 0, None, None] * dx + inv[:, 0, 1, None, None] * dy + (t / 2 + 1)  # +1: the border
    v = inv[:, 1, 0, None, None] * dx + inv[:, 1, 1, None, None] * dy + (t / 2 + 1)
    x = np.clip(u, 0.0, t + 1.5, out=u).astype(np.int32)
    y = np.clip(v, 0.0, t + 1.5, out=v).astype(np.int32)
    idx = (labels[:, None, None] * (t + 2) + y) * (t + 2) + x
    return table.take(idx).view(np.uint8).reshape(*idx.shape, 4)


def _box_reduce(x: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks of uint8 x, as float32 in [0, 1]: [n, h, w, c] -> [n, h / f, w / f, c]."""
    acc = x[:, 0::f, 0::f].astype(np.float32)
    for i in range(f):
        for j in range(f):
            if i or j:
                acc += x[:, i::f, j::f]
    return acc * np.float32(1 / (255 * f * f))


def _colours(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random RGB colours [*shape, 3], float32, with random saturation (many are muted, as outdoors)."""
    c = rng.uniform(0, 1, (*shape, 3))
    grey = c.mean(axis=-1, keepdims=True)
    return (grey + (c - grey) * rng.uniform(0.2, 1.0, (*shape, 1))).astype(np.float32)


def _soft_shapes(rng: np.random.Generator, n: int, s: int, count: int, canvas: np.ndarray) -> np.ndarray:
    """Composite `count` random soft ellipses and lines (40%) of random colour onto canvas [n, s, s, 3]."""
    f32 = np.float32
    g = np.arange(s, dtype=f32) + 0.5
    xx, yy = g[None, None, :], g[None, :, None]
    colour = _colours(rng, (count, n, 1, 1))
    opacity = rng.uniform(0.3, 1.0, (count, n, 1, 1)).astype(f32)
    cx, cy = rng.uniform(-0.1, 1.1, (2, count, n, 1, 1)) * s
    theta = rng.uniform(0, np.pi, (count, n, 1, 1))
    is_line = rng.random((count, n, 1, 1)) < 0.4
    ra = np.where(is_line, 10.0 * s, rng.uniform(0.06, 0.4, (count, n, 1, 1)) * s)
    rb = np.where(is_line, rng.uniform(0.02, 0.06, (count, n, 1, 1)) * s, ra * rng.uniform(0.3, 1, ra.shape))
    c, sn = np.cos(theta), np.sin(theta)
    # Normalised ellipse coordinates a = along / ra, b = across / rb as affine functions of (x, y).
    ax, ay, a0 = (c / ra).astype(f32), (sn / ra).astype(f32), (-(cx * c + cy * sn) / ra).astype(f32)
    bx, by, b0 = (-sn / rb).astype(f32), (c / rb).astype(f32), ((cx * sn - cy * c) / rb).astype(f32)
    sharp = (np.maximum(rb, 1.0) / 1.5).astype(f32)  # about a 1.5-pixel soft edge
    for k in range(count):
        a = xx * ax[k] + yy * ay[k] + a0[k]
        b = xx * bx[k] + yy * by[k] + b0[k]
        d = np.sqrt(a * a + b * b)
        mask = np.clip((1.0 - d) * sharp[k] + 0.5, 0.0, 1.0) * opacity[k]
        canvas += (colour[k] - canvas) * mask[..., None]
    return canvas


def _background(rng: np.random.Generator, n: int, s: int) -> np.ndarray:
    """Cluttered backgrounds: a two-colour linear gradient plus soft blobs and lines, [n, s, s, 3]."""
    c0, c1 = _colours(rng, (2, n, 1, 1))
    theta = rng.uniform(0, 2 * np.pi, (n, 1, 1, 1)).astype(np.float32)
    g = (np.arange(s, dtype=np.float32) + 0.5) / s - 0.5
    t = np.cos(theta) * g[None, None, :, None] + np.sin(theta) * g[None, :, None, None] + 0.5
    canvas = c0 + (c1 - c0) * t
    return _soft_shapes(rng, n, s, 4, canvas)


def _blur(x: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Per-sample separable 3-tap gaussian blur; sigma [n] in pixels (0 = none)."""
    w1 = np.exp(-0.5 / np.maximum(sigma, 1e-3) ** 2).astype(np.float32)[:, None, None, None]
    norm = 1 + 2 * w1
    p = np.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0)), mode="edge")
    x = (p[:, 1:-1] + w1 * (p[:, :-2] + p[:, 2:])) / norm
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)), mode="edge")
    return (p[:, :, 1:-1] + w1 * (p[:, :, :-2] + p[:, :, 2:])) / norm


def _render(rng: np.random.Generator, table: np.ndarray, labels: np.ndarray, s: int) -> np.ndarray:
    """Render labelled samples at s x s: uint8 [n, s, s, 3]."""
    n = len(labels)
    f32 = np.float32
    hi = s * _SUPERSAMPLE
    # Pose: output = M @ template + shift, M = scale * rotation * [[aspect, shear], [0, 1 / aspect]].
    scale = rng.uniform(0.75, 1.05, n)
    ang = np.radians(rng.uniform(-12, 12, n))
    aspect = np.exp(rng.uniform(-0.08, 0.08, n))
    shear = rng.uniform(-0.1, 0.1, n)
    shift = rng.uniform(-0.1, 0.1, (n, 2)) * hi
    c, sn = np.cos(ang), np.sin(ang)
    rot = np.stack([np.stack([c, -sn], -1), np.stack([sn, c], -1)], -2)
    shape = np.zeros((n, 2, 2))
    shape[:, 0, 0], shape[:, 0, 1], shape[:, 1, 1] = aspect, shear, 1 / aspect
    m = scale[:, None, None] * rot @ shape
    inv = np.linalg.inv(m).astype(f32)
    sign = _box_reduce(_warp(table, hi, labels, inv, shift.astype(f32), hi), _SUPERSAMPLE)
    rgb, alpha = sign[..., :3], sign[..., 3:]
    # Sign wear: fading towards grey and a shadow/highlight factor, before compositing.
    fade = rng.uniform(0.0, 0.25, (n, 1, 1, 1)).astype(f32)
    light = rng.uniform(0.75, 1.15, (n, 1, 1, 1)).astype(f32)
    rgb = (rgb + (0.55 * alpha - rgb) * fade) * light
    img = rgb + (1 - alpha) * _background(rng, n, s)
    # Occasional occlusion: one more random blob or line, in front of the sign.
    occluded = rng.random(n) < 0.1
    if occluded.any():
        idx = np.flatnonzero(occluded)
        img[idx] = _soft_shapes(rng, len(idx), s, 1, img[idx])
    # Global photometric changes.
    contrast = rng.uniform(0.75, 1.2, (n, 1, 1, 1)).astype(f32)
    bright = rng.uniform(-0.15, 0.12, (n, 1, 1, 1)).astype(f32)
    cast = rng.uniform(0.85, 1.15, (n, 1, 1, 3)).astype(f32)
    gamma = np.exp(rng.uniform(-0.35, 0.35, (n, 1, 1, 1))).astype(f32)
    mean = img.mean(axis=(1, 2, 3), keepdims=True)
    img = ((img - mean) * contrast + mean + bright) * cast
    img = np.clip(img, 0.0, 1.0) ** gamma
    img = _blur(img, rng.uniform(0.0, 0.7, n))
    img = img + rng.standard_normal(img.shape, dtype=f32) * rng.uniform(0.005, 0.04, (n, 1, 1, 1)).astype(f32)
    return (np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _split(seq: np.random.SeedSequence, n: int, table: np.ndarray, s: int) -> Split:
    rng = np.random.default_rng(seq)
    labels = rng.permutation(np.arange(n) % NUM_CLASSES).astype(np.int32)
    images = np.empty((n, s, s, 3), np.uint8)
    for lo in range(0, n, _CHUNK):
        images[lo : lo + _CHUNK] = _render(rng, table, labels[lo : lo + _CHUNK], s)
    return Split(images, labels)


def synthetic_signs(
    n_train: int = 8600, n_val: int = 860, n_test: int = 4300, *, image_size: int = 28, seed: int = 0
) -> Dataset:
    """Procedural 43-class traffic signs (GTSRB-like), balanced, deterministic under `seed`.

    Images are uint8 [N, S, S, 3], labels int32 [N]; a split of size 0 is None (train: empty).
    Splits come from disjoint sub-seeds of `seed`.
    """
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16, got {image_size}")
    for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if n < 0:
            raise ValueError(f"{name} must be >= 0, got {n}")
    table = _pack(class_templates(image_size * _SUPERSAMPLE))
    seqs = np.random.SeedSequence(seed).spawn(3)
    train, val, test = (
        _split(q, n, table, image_size) for q, n in zip(seqs, (n_train, n_val, n_test), strict=True)
    )
    return Dataset(
        name="synthetic-signs",
        train=train,
        val=val if n_val else None,
        test=test if n_test else None,
        num_classes=NUM_CLASSES,
        meta={
            "source": "procedural",
            "image_size": image_size,
            "seed": seed,
            "class_names": list(CLASS_NAMES),
        },
    )
