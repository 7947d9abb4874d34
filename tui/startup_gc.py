"""The cyclic garbage collector rests from the start of an app command until the app's first frame is on screen.

Starting the app creates a few hundred thousand long-lived objects (modules, CSS rules, widgets) and next to no
cyclic garbage, yet they trigger full collections: one landed in the middle of the first frame and took 40 ms
(bench/startup.py). After the first frame the start-up objects are frozen out of the collector's way
(`gc.freeze`, so later collections need not walk them again) and collection resumes as normal.
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Freeze what start-up made and collect again; does nothing unless `pause` disabled the collector."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
