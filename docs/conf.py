"""Sphinx configuration of the sk_crust documentation (``make docs``).

Builds offline: no intersphinx, no downloads. The figure of the user guide is drawn at build time
by ``make_figures.py`` (with sk_crust itself) into ``generated/``, next to autosummary's stubs.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..")))
sys.path.insert(0, HERE)

import sk_crust

project = "sk_crust"
author = "sk_crust developers"
copyright = "sk_crust developers"
release = sk_crust.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
]

# Offline build: no intersphinx mapping (nothing is fetched at build time).
nitpicky = False
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

templates_path = ["_templates"]
exclude_patterns = ["_build", "examples/*.py"]
source_suffix = {".rst": "restructuredtext"}
master_doc = "index"

html_theme = "pydata_sphinx_theme"
html_title = f"sk_crust {release}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": True,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"**": []}


def _draw_figures(app):
    from make_figures import main

    main(os.path.join(app.srcdir, "generated"))


def setup(app):
    app.connect("builder-inited", _draw_figures)
