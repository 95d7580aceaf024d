"""The README and docs/ hold together: every relative link resolves inside the repository, the README stays short
and keeps the markers `make results-page` fills."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
# Written by other steps: docs/gpu.md with `make gpu-check`, docs/results.md by `make results-page` from a run.
GENERATED_ELSEWHERE = {DOCS / "gpu.md", DOCS / "results.md"}
MARKERS = ("<!-- results:begin -->", "<!-- results:end -->")
MAX_README_LINES = 160

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code removed."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, INLINE_CODE.sub("", line)))
    return lines


def links(text: str) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(text):
        found += [(number, match.group(1) or match.group(2)) for match in LINK.finditer(line)]
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = INLINE_CODE.sub(lambda m: m.group(0).strip("`"), heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for _, line in prose_lines(page.read_text()) if re.match(r"#{1,6} ", line)}


def broken_links(page: Path, text: str | None = None) -> list[str]:
    """Every relative link of ``page`` (or of ``text`` read as if it were that page) that does not resolve to a file
    (and a heading of it) inside the repository."""
    problems = []
    for number, target in links(page.read_text() if text is None else text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        where = f"{page.relative_to(REPO)}:{number}: {target}"
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.is_relative_to(REPO):
            problems.append(f"{where} leaves the repository")
            continue
        if not resolved.exists():
            if resolved not in GENERATED_ELSEWHERE:
                problems.append(f"{where} points to a missing file")
            continue
        if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{where} names no heading of {resolved.relative_to(REPO)}")
    return problems


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(page):
    assert links(page.read_text()), f"{page} links nothing: the link parser may be broken"
    assert broken_links(page) == []


def test_the_link_check_catches_a_missing_file_an_outside_link_and_a_missing_heading():
    text = (
        "# Probe\n[ok](method.md#1-the-idea-in-one-paragraph) [gone](nothing.md) [out](../../shared/docs/method.md)\n"
        "[heading](models.md#no-such-heading) [web](https://example.org/x.md) `[code](x.md)`\n"
        "```\n[fenced](y.md)\n```\n"
    )
    problems = broken_links(DOCS / "probe.md", text)
    assert len(problems) == 3, problems
    assert "nothing.md points to a missing file" in problems[0]
    assert "leaves the repository" in problems[1]
    assert "names no heading of docs/models.md" in problems[2]


def test_readme_is_short_and_holds_the_results_markers_in_order():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    begin, end = (text.find(marker) for marker in MARKERS)
    assert 0 <= begin < end, "README.md needs <!-- results:begin --> then <!-- results:end -->"


def test_readme_links_every_docs_page():
    linked = {(README.parent / target.partition("#")[0]).resolve() for _, target in links(README.read_text())}
    missing = sorted(p.name for p in {*DOCS.glob("*.md"), *GENERATED_ELSEWHERE} if p.resolve() not in linked)
    assert missing == [], f"README.md does not link {missing}"
