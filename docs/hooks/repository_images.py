"""mkdocs hook: the figures that the pages show from the repository's ``results/`` folder enter the site.

The result pages link their figures where ``convrec results`` and the scripts write them, e.g.
``../../results/baselines.png`` from ``docs/results/baselines.md``, so the links work when the pages are
read in the repository. mkdocs publishes only files under ``docs/``; this hook adds each ``results/*.png`` as
a site file whose source path is the one those links resolve to (``../results/NAME.png``, relative to
``docs/``), published as ``repository/results/NAME.png``. mkdocs then checks and rewrites these links like
any other, so a link to a figure that does not exist still fails ``mkdocs build --strict``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files, InclusionLevel

FIGURE_FOLDERS = ("results",)  # repository folders, beside docs/, whose PNG files the pages show


def on_files(files: Files, config: MkDocsConfig) -> Files:
    repository = Path(config.docs_dir).parent
    for folder in FIGURE_FOLDERS:
        for figure in sorted((repository / folder).glob("*.png")):
            # INCLUDED outright: mkdocs's default exclusion of hidden paths (".*") would match the "../"
            # and drop the figure with a mere INFO line, which --strict lets through.
            site_file = File.generated(config, f"../{folder}/{figure.name}", abs_src_path=str(figure),
                                       inclusion=InclusionLevel.INCLUDED)
            site_file.dest_uri = f"repository/{folder}/{figure.name}"
            files.append(site_file)
    return files
