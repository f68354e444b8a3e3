"""The one reader of `.env` files, for Python (`app.settings`) and for the shell scripts (`scripts/lib.sh`).

Standard library only: the scripts run it with the system's python3 before the virtual environment exists.
A line is `KEY=VALUE` (an optional `export ` prefix is allowed); blank lines and `#` comments are skipped;
one pair of matching quotes around the value is removed; nothing is expanded. A value already in the
environment wins over the file. A malformed line is an error naming the file and line.

    python3 app/dotenv.py .env    prints `export KEY='value'` lines (shell-quoted) for `eval` in the scripts
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import MutableMapping
from pathlib import Path

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DotenvError(ValueError):
    """A line of a .env file that is not KEY=VALUE."""


def parse(text: str, *, source: str = ".env") -> dict[str, str]:
    """The KEY → value pairs of a .env text, in order; a later line with the same key wins."""
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.match(key):
            raise DotenvError(f"{source}:{lineno}: expected KEY=VALUE, got {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def read(path: Path | str) -> dict[str, str]:
    """The pairs of a .env file; an absent file has none."""
    path = Path(path)
    return parse(path.read_text(encoding="utf-8"), source=str(path)) if path.is_file() else {}


def load(path: Path | str, environ: MutableMapping[str, str] | None = None) -> None:
    """Put the file's pairs into the environment, never over a variable that is already set."""
    environ = os.environ if environ is None else environ
    for key, value in read(path).items():
        environ.setdefault(key, value)


def shell_exports(path: Path | str, environ: MutableMapping[str, str] | None = None) -> str:
    """`export KEY='value'` lines for the file's pairs that the environment does not set already."""
    environ = os.environ if environ is None else environ
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in read(path).items() if key not in environ)


if __name__ == "__main__":
    try:
        sys.stdout.write("".join(shell_exports(p) for p in sys.argv[1:]))
    except (DotenvError, OSError, UnicodeDecodeError) as exc:
        sys.exit(f"cannot read the environment file: {exc}")
