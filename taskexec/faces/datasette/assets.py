"""Where Datasette's own files (the repository's ``datasette/`` folder) are found at run time."""

from __future__ import annotations

from pathlib import Path


def assets_dir() -> Path:
    """The folder holding ``templates/`` and ``static/``.

    A wheel install has them in the package: the build copies the repository's ``datasette/``
    folder to ``taskexec/faces/datasette/assets/`` (pyproject.toml's hatch ``sources``). A
    source checkout, editable installs included, has no such folder and uses ``datasette/`` at
    the repository root, so edits to the templates show without reinstalling.
    """
    packaged = Path(__file__).parent / "assets"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "datasette"
