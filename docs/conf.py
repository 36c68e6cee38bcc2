"""Sphinx configuration: the documentation site built from docs/ (Markdown through MyST), the
command-line reference generated from the click commands (sphinx-click) and the Python API from
the public docstrings (autodoc). CI builds it with -W: a warning (a broken link or reference)
fails the build."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cod_lite  # noqa: E402

project = "cod-lite"
release = cod_lite.__version__
copyright = "the cod-lite authors; the official CoD-Lite weights' terms are their authors'"
extensions = ["myst_parser", "sphinx_click", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]
html_theme = "furo"
html_title = f"cod-lite {release}"
exclude_patterns = ["_build"]
autodoc_typehints = "description"
autodoc_member_order = "bysource"
# What a look at the built pages in a browser showed: "--force" in the generated command-line
# reference became an en dash, and `codlite models` in docstrings italics.
smartquotes = False
default_role = "literal"
