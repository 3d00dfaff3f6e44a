"""MkDocs hook: pages built from the files they mirror, so the site never drifts from them.

- ``index.md`` is the repository's ``README.md`` (its links into ``docs/`` made site-relative);
  ``contributing.md`` and ``changelog.md`` are ``CONTRIBUTING.md`` and ``CHANGELOG.md``.

- Docstrings cross-reference in Sphinx's roles (``:func:`~a.b.name` ``), which Python tools and
  IDEs read; on the site such a role shows as the name in code (``name``, or the whole path without
  the ``~``).
- Every ``example_projects/<name>/README.md`` becomes the page ``gallery/<name>/index.md`` (its
  figures, ``figures/*``, beside it): the gallery shows what the examples' own READMEs say, with the
  figures their commands wrote.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent


def _site_relative(text: str) -> str:
    """A repository file's links into ``docs/`` as links within the site."""
    return text.replace("](docs/", "](")


def on_files(files: Files, config) -> Files:
    for source, page in (
        ("README.md", "index.md"),
        ("CONTRIBUTING.md", "contributing.md"),
        ("CHANGELOG.md", "changelog.md"),
    ):
        text = _site_relative((ROOT / source).read_text(encoding="utf-8"))
        files.append(File.generated(config, page, content=text))
    for readme in sorted((ROOT / "example_projects").glob("*/README.md")):
        name = readme.parent.name
        files.append(File.generated(config, f"gallery/{name}/index.md", abs_src_path=str(readme)))
        for figure in sorted((readme.parent / "figures").glob("*.png")):
            files.append(
                File.generated(config, f"gallery/{name}/figures/{figure.name}", abs_src_path=str(figure))
            )
    return files


_ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|exc|obj):<code>(~?)([\w.]+)( &lt;[\w.]+&gt;)?</code>")


def _shown(match: re.Match[str]) -> str:
    tilde, path, target = match.group(1), match.group(2), match.group(3)
    shown = path if target else (path.rsplit(".", 1)[-1] if tilde else path)  # a title is shown as written
    return f"<code>{shown}</code>"


def on_page_content(html: str, page, config, files) -> str:
    """Sphinx roles in rendered docstrings, shown as the names they refer to."""
    return _ROLE.sub(_shown, html)
