"""The README and docs/ name only what exists: files, modules, functions, configuration fields and anchors.

What is checked, in README.md and every docs/*.md:
- a link to a local file (and its #anchor: a heading of that file, as GitHub makes anchors) exists;
- a code span or code block that names a path in the repository (its first part is one of the repository's own
  folders or files: `livedigits/state/journal.py`, `bench/scale.py`, `models/heldout.npz`) names one that exists;
  paths inside a store (`log/0000000001.json`) are not the repository's and are left alone;
- a dotted name in the package (`livedigits.serving.server.Server.train`) imports and resolves, attribute by
  attribute; so do a root module's names (`main.create_app`, `functions.augment`) and `Config.<field>`;
- `python -m <module>` names a module that exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest
from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ROOT_MODULES = ("main", "functions", "two_layer_net", "conv_net")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
# `main.py` is a file (the path check's), `main.create_app` a name (this one's).
DOTTED = re.compile(r"\b((?:livedigits|" + "|".join(ROOT_MODULES) + r")(?:\.(?!py\b)[A-Za-z_]\w*)+)")
CONFIG_FIELD = re.compile(r"\bConfig\.([a-z_]\w*)")
PYTHON_M = re.compile(r"python3? -m ([\w.]+)")
EXTENSIONS = "py|md|json|txt|sh|toml|html|js|css|npz|cfg"
PATH = re.compile(rf"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+\.(?:{EXTENSIONS})|[\w.-]+/(?:[\w.-]+/?)*)")


def top_level() -> set[str]:
    return {p.name for p in ROOT.iterdir() if not p.name.startswith(".") or p.name in (".ci", ".python-version")}


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            continue
        target = importlib.import_module(name)
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def code_of(text: str) -> list[str]:
    """The code spans and code blocks of a markdown text."""
    return [*SPAN.findall(FENCE.sub("", text)), *FENCE.findall(text)]


def problems(doc: Path) -> list[str]:
    from livedigits.config import Config

    text, found, roots = doc.read_text(), [], top_level()
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        linked = (doc.parent / file).resolve() if file else doc
        if not linked.exists():
            found.append(f"link to a missing file: {target}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            found.append(f"link to a missing anchor: {target}")
    for code in code_of(text):
        for path in PATH.findall(code):
            first = path.split("/")[0]
            if ((first in roots and "/" in path) or path in roots) and not (ROOT / path.rstrip("/")).exists():
                found.append(f"missing path: {path}")
        for dotted in DOTTED.findall(code):
            if not resolves(dotted.rstrip(".")):
                found.append(f"does not resolve: {dotted}")
        for field in CONFIG_FIELD.findall(code):
            if not hasattr(Config, field):
                found.append(f"no such configuration field: Config.{field}")
        for module in PYTHON_M.findall(code):
            if importlib.util.find_spec(module.split(".")[0]) is None or (
                module.startswith("livedigits") and importlib.util.find_spec(module) is None
            ):
                found.append(f"no such module: python -m {module}")
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_a_doc_names_only_what_exists(doc):
    assert problems(doc) == []


def test_the_checker_catches_what_does_not_exist(tmp_path):
    """The check can fail: a doc naming a missing anchor, file, function, field and module gets each reported."""
    doc = tmp_path / "bad.md"
    doc.write_text(
        "# Title\n[gone](#no-such-heading) `livedigits/nowhere.py` `livedigits.serving.server.Server.fly`\n"
        "`Config.no_such_knob`\n```bash\npython -m livedigits.nothing\n```\n[ok](#title)\n"
    )
    kinds = {problem.split(":")[0] for problem in problems(doc)}
    assert kinds == {
        "link to a missing anchor",
        "missing path",
        "does not resolve",
        "no such configuration field",
        "no such module",
    }, problems(doc)


def test_the_readme_is_a_manual_of_at_most_2000_words():
    words = len(re.findall(r"\S+", (ROOT / "README.md").read_text()))
    assert words <= 2000, f"README.md has {words} words: move detail to docs/"
