"""The artwork of the 43 synthetic sign classes: each drawn once with PIL, front-on, as an RGBA template.

Sign shapes, border and fill colours and an inner glyph (speed-limit digits from a 5x7 bitmap font,
arrows, pictograms from lines), drawn at high resolution and box-downsampled with premultiplied alpha.
Several classes differ only by their glyph (the eight speed limits, the warning triangles), as in
the real data. :mod:`jaxadl.data.synthetic` poses and renders them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from jaxadl.data.glyphs import FONT as _FONT
from jaxadl.data.signs import CLASS_NAMES, NUM_CLASSES

_SIGN_RADIUS = 0.43  # sign radius as a fraction of the image side at scale 1
_DRAW_FACTOR = 4  # templates are drawn at this multiple of the requested size

RGB = tuple[int, int, int]
RED: RGB = (200, 25, 35)
WHITE: RGB = (240, 240, 236)
BLUE: RGB = (25, 75, 175)
YELLOW: RGB = (245, 185, 20)
BLACK: RGB = (20, 20, 24)
GREY: RGB = (130, 130, 130)
GREEN: RGB = (30, 150, 60)

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
