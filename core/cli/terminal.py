"""Text from files (style names, credits) made safe to print on a terminal.

A model file is data from anyone: a style name holding ESC sequences could
recolour, clear or retitle the user's terminal. Control and format characters
are shown escaped instead (ESC as \\x1b), everything else as it is.
"""

from __future__ import annotations

import unicodedata


def printable(text: object) -> str:
    out = []
    for ch in str(text):
        if unicodedata.category(ch) in ("Cc", "Cf") and ch != "\t":
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)
