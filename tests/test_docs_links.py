"""The documentation stays inside the repository: every relative Markdown link resolves to a file
or folder in it (and, into a Markdown file, to a heading that exists), and no file points at the
team's shared design folders, which a clone of the repository does not have.

Files are the repository's own: `git ls-files` (tracked, plus new files not ignored), or, without
git, a walk that skips `.git`, `.venv` and `.cache`. No services; the whole module runs in well
under a second.
"""

import functools
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = frozenset({".git", ".venv", ".cache", "node_modules", "__pycache__"})
# Written in two parts so that this file does not mention them itself.
OUTSIDE_MENTIONS = ("shared/" + "design/", "shared/" + "reference/")


def repo_files(pattern: str = "*") -> list[Path]:
    """The repository's files matching `pattern` (a git pathspec glob, `*` crossing folders)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", pattern],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode()
        paths = [ROOT / name for name in listed.split("\0") if name]
    except (OSError, subprocess.SubprocessError):
        paths = list(ROOT.rglob(pattern))
    return sorted(
        p for p in paths if p.is_file() and not SKIPPED_DIRS.intersection(p.relative_to(ROOT).parts)
    )


# --- reading Markdown ------------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[`~]*[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# [text](target) and ![alt](target), the target optionally in <...> and followed by a "title".
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:name|id)=[\"']([^\"']+)[\"']", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _without_code(text: str) -> str:
    """The text with fenced blocks, code spans and comments blanked: what looks like a link or a
    heading there is not one."""
    text = _FENCE.sub("", text)
    text = _COMMENT.sub("", text)
    return _CODE_SPAN.sub("code", text)


def link_targets(text: str) -> list[str]:
    prose = _without_code(text)
    found = [m.group(1) for m in _INLINE_LINK.finditer(prose)]
    found += [m.group(1) for m in _REFERENCE_LINK.finditer(prose)]
    return [t[1:-1] if t.startswith("<") and t.endswith(">") else t for t in found]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower case, without punctuation but `-` and `_`,
    spaces as hyphens."""
    heading = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    heading = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def anchors(text: str) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set(_HTML_ANCHOR.findall(text))
    fenced_out = _COMMENT.sub("", _FENCE.sub("", text))
    for m in _HEADING.finditer(fenced_out):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return frozenset(found)


@functools.cache
def _anchors_of(path: Path) -> frozenset[str]:
    return anchors(path.read_text(encoding="utf-8"))


# --- checking --------------------------------------------------------------------------------


def link_problems(text: str, source: Path) -> list[str]:
    """What is wrong with the links of Markdown `text` read as the file `source` (which need not
    exist): one line per link that leaves the repository or leads nowhere."""
    problems = []
    for target in link_targets(text):
        if _SCHEME.match(target):
            if target.lower().startswith("file:"):
                problems.append(f"{target}: a file URL points outside the repository")
            continue  # a web address: not a file of the repository
        path_part, _, anchor = target.partition("#")
        if not path_part:
            if anchor and anchor not in anchors(text):
                problems.append(f"{target}: no heading with this anchor in this file")
            continue
        if path_part.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", path_part):
            problems.append(f"{target}: an absolute path, outside the repository")
            continue
        resolved = (source.parent / unquote(path_part)).resolve()
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{target}: leads above the repository's root")
            continue
        if SKIPPED_DIRS.intersection(resolved.relative_to(ROOT).parts):
            problems.append(f"{target}: leads into {SKIPPED_DIRS & set(resolved.parts)}")
            continue
        if not resolved.exists():
            problems.append(f"{target}: no such file in the repository")
            continue
        in_markdown = resolved.suffix == ".md" and resolved.is_file()
        if anchor and in_markdown and anchor not in _anchors_of(resolved):
            problems.append(f"{target}: no heading with this anchor in {path_part}")
    return problems


MARKDOWN = repo_files("*.md")


def test_the_repository_has_markdown() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in MARKDOWN}
    assert {"README.md", "docs/clients.md", "docs/contract.md"} <= names


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves_inside_the_repository(path: Path) -> None:
    problems = link_problems(path.read_text(encoding="utf-8"), path)
    assert not problems, f"{path.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


def test_no_file_mentions_the_shared_design_folders() -> None:
    needles = [m.encode() for m in OUTSIDE_MENTIONS]
    mentions = [
        f"{path.relative_to(ROOT)}: {needle.decode()}"
        for path in repo_files()
        for needle in needles
        if needle in path.read_bytes()
    ]
    assert not mentions, "outside the repository:\n  " + "\n  ".join(mentions)


# --- the checker itself ------------------------------------------------------------------------

_EXAMPLE = ROOT / "docs" / "example.md"  # a made-up file beside the real docs


@pytest.mark.parametrize(
    "markdown",
    [
        "See [the contract](no-such-file.md).",
        "See [the contract](contract.md#no-such-heading).",
        "See [it](../no/such/dir/).",
        "See [above the root](../../outside.md).",
        f"See [the brief](../../{OUTSIDE_MENTIONS[0]}CONTRACT.md).",
        f"See [the brief](/work/{OUTSIDE_MENTIONS[0]}CONTRACT.md).",
        "See [a file URL](file:///etc/hostname).",
        "See [here](#nowhere).\n\n# Somewhere\n",
        f"[brief]: ../../{OUTSIDE_MENTIONS[1]}x.json\n",
        "See ![a picture](missing.png).",
    ],
)
def test_the_checker_finds_a_broken_link(markdown: str) -> None:
    assert len(link_problems(markdown, _EXAMPLE)) == 1


@pytest.mark.parametrize(
    "markdown",
    [
        "See [the contract](contract.md) and [the README](../README.md).",
        "See [the versioning rule](clients.md#versioning-the-contract).",
        "See [it](contract.md#what-the-worker-decides-where-vapis-schema-is-silent).",
        "See [the types](../contracts) and [a schema](<../contracts/schemas/events.schema.json>).",
        "See [below](#two-words).\n\n## Two `words`\n",
        "See [rich](https://github.com/Textualize/rich).",
        "`[not a link](nowhere.md)`, and\n\n```md\n[nor this](nowhere.md)\n```\n",
    ],
)
def test_the_checker_accepts_a_good_link(markdown: str) -> None:
    assert link_problems(markdown, _EXAMPLE) == []
