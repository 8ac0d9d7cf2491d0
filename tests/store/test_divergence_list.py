"""The divergence list is the README's quirk list, and each entry is asserted by a conformance test."""

import re
from pathlib import Path

from tests.store import divergences


def test_the_readme_lists_exactly_the_known_divergences():
    assert divergences.current(divergences.README.read_text()) == divergences.readme_block(), (
        "README.md's nx-27017 quirks are stale: run .venv/bin/python -m tests.store.divergences")


def test_every_divergence_is_asserted_by_a_test_and_every_test_names_a_listed_one():
    sources = "".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py"))
    named = set(re.findall(r'diverges="(\w+)"', sources)) | set(re.findall(r'wrong = "(\w+)"', sources))
    assert named == set(divergences.BY_KEY)
