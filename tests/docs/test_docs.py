"""The README and the docs site: links that resolve, a strict mkdocs build that shows its figures, results
tables whose documented refresh command works, and a README that stays short."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from convrec.evaluate.report import update_readme

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README_MAX_LINES = 150
MARKERS = "<!-- results:{name}:start -->", "<!-- results:{name}:end -->"

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def relative_links(text: str) -> list[str]:
    """The targets of the Markdown links and images in ``text`` that point into the repository (no scheme,
    not a bare ``#anchor``), outside code blocks and code spans; the anchor is dropped."""
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    targets = []
    for target in LINK.findall(prose):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or not parts.path:
            continue
        targets.append(unquote(parts.path))
    return targets


def test_relative_links_finds_links_and_images_but_not_code():
    text = ("[a](docs/a.md#part) ![b](../results/b.png) [web](https://example.org) [self](#top)\n"
            "`[c](c.md)`\n```\n[d](d.md)\n```\n")
    assert relative_links(text) == ["docs/a.md", "../results/b.png"]


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = [target for target in relative_links(page.read_text(encoding="utf-8"))
              if not (page.parent / target).exists()]
    assert not broken, f"{page.relative_to(ROOT)}: links to missing files: {broken}"


def test_readme_stays_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): a full table or its analysis "
        "belongs on a page under docs/, with at most one headline row in the README")


class _Sources(HTMLParser):
    """The local targets of a page's ``<img src>`` and ``<a href>``."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        key = {"img": "src", "a": "href"}.get(tag)
        for name, value in attrs:
            if name == key and value:
                parts = urlsplit(value)
                if not parts.scheme and not parts.netloc and parts.path:
                    self.targets.append(unquote(parts.path))


def mkdocs_build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=project, capture_output=True, text=True, timeout=120)


def test_mkdocs_build_is_strict_clean_and_the_site_holds_what_its_pages_show(tmp_path):
    site = tmp_path / "site"
    build = mkdocs_build(ROOT, site)
    assert build.returncode == 0, build.stdout + build.stderr
    # --strict fails on warnings only; a link to a file mkdocs leaves out of the site is an INFO line. So
    # check the built pages themselves: every image and local link they hold must be in the site.
    missing = []
    for html in site.rglob("*.html"):
        parser = _Sources()
        parser.feed(html.read_text(encoding="utf-8"))
        for target in parser.targets:
            base = site if target.startswith("/") else html.parent  # 404.html links from the site root
            resolved = (base / target.lstrip("/")).resolve()
            if not (resolved / "index.html" if target.endswith("/") else resolved).exists():
                missing.append(f"{html.relative_to(site)} -> {target}")
    assert not missing, missing
    figures = sorted(p.name for p in (site / "repository" / "results").glob("*.png"))
    assert "baselines.png" in figures  # the hook published the results figures the pages show


@pytest.mark.parametrize("breakage", [None, "a link to a missing page", "a page left out of the navigation"])
def test_mkdocs_configuration_fails_the_build_on(breakage, tmp_path):
    """mkdocs.yml's validation settings are what make --strict mean something: on a copy of the docs (with the
    figures they show, so that the unbroken copy builds)."""
    project = tmp_path / "project"
    shutil.copytree(DOCS, project / "docs")
    shutil.copyfile(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    (project / "results").mkdir()
    for figure in (ROOT / "results").glob("*.png"):
        shutil.copyfile(figure, project / "results" / figure.name)
    if breakage == "a link to a missing page":
        with (project / "docs" / "index.md").open("a", encoding="utf-8") as page:
            page.write("\nSee [the old page](no-such-page.md).\n")
    elif breakage == "a page left out of the navigation":
        (project / "docs" / "orphan.md").write_text("# An orphan\n", encoding="utf-8")
    build = mkdocs_build(project, tmp_path / "site")
    if breakage is None:
        assert build.returncode == 0, build.stdout + build.stderr
    else:
        assert build.returncode != 0, f"mkdocs build --strict passed with {breakage}"
        assert "no-such-page.md" in build.stderr or "orphan.md" in build.stderr, build.stderr


def experiments() -> dict[str, str]:
    """Each experiment file under configs/ that makes a results table: its path -> its ``name``."""
    found = {}
    for config in sorted((ROOT / "configs").glob("*.toml")):
        data = tomllib.loads(config.read_text(encoding="utf-8"))
        if "recommenders" in data:
            found[f"configs/{config.name}"] = data["name"]
    return found


def test_every_experiment_has_its_table_on_exactly_one_docs_page():
    pages = sorted(DOCS.rglob("*.md"))
    for config, name in experiments().items():
        start, end = (marker.format(name=name) for marker in MARKERS)
        holding = [p.relative_to(ROOT) for p in pages if start in p.read_text(encoding="utf-8")]
        assert len(holding) == 1, f"{config}: table '{name}' is on {holding or 'no page'}"
        text = (ROOT / holding[0]).read_text(encoding="utf-8")
        assert text.index(start) < text.index(end), f"{holding[0]}: markers of '{name}' out of order"


REFRESH = re.compile(r"convrec results --config (configs/[\w.-]+\.toml) --update-readme (\S+)")


def documented_refresh_commands() -> list[tuple[str, str, str]]:
    """(where, config, target file) of every ``convrec results --config X --update-readme Y`` the project
    tells its users: in the README, the docs, the experiment files, the scripts and bench/README.md."""
    places = [*markdown_files(), *sorted((ROOT / "configs").glob("*.toml")),
              *sorted((ROOT / "scripts").glob("*")), ROOT / "bench" / "README.md"]
    return [(str(place.relative_to(ROOT)), config, target)
            for place in places for config, target in REFRESH.findall(place.read_text(encoding="utf-8"))]


def test_every_documented_refresh_command_targets_a_file_with_that_tables_markers():
    commands = documented_refresh_commands()
    documented = {config for _, config, _ in commands}
    assert documented >= set(experiments()), f"no documented refresh for {set(experiments()) - documented}"
    for where, config, target in commands:
        name = experiments()[config]
        text = (ROOT / target).read_text(encoding="utf-8")
        assert all(marker.format(name=name) in text for marker in MARKERS), (
            f"{where}: `--update-readme {target}` for {config}, but {target} has no markers for '{name}'")


def test_update_readme_refreshes_a_docs_page_table_and_nothing_else(tmp_path):
    """What `convrec results --update-readme docs/results/PAGE.md` does to each page, on a copy of it."""
    for name in sorted(set(experiments().values())):
        start, end = (marker.format(name=name) for marker in MARKERS)
        [page] = [p for p in sorted(DOCS.rglob("*.md")) if start in p.read_text(encoding="utf-8")]
        copy = tmp_path / page.name
        shutil.copyfile(page, copy)
        assert update_readme(copy, name, "| new | table |")
        before, after = page.read_text(encoding="utf-8"), copy.read_text(encoding="utf-8")
        head, tail = before[: before.index(start)], before[before.index(end) + len(end):]
        assert after == f"{head}{start}\n| new | table |\n{end}{tail}"
