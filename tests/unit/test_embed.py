"""The widget scripts as served: each one file under 20 kB gzipped, no address of anyone but the service in it."""

import gzip
import re
from pathlib import Path

import pytest

from shared import embed

ROOT = Path(__file__).resolve().parents[2]
WIDGETS = [ROOT / "services" / service / "static" / "embed.js" for service in ("registration", "comments")]


@pytest.mark.parametrize("widget", WIDGETS, ids=lambda p: p.parts[-3])
def test_each_widget_is_at_most_20_kb_gzipped(widget):
    assert len(gzip.compress(embed.script(widget), 9)) <= 20 * 1024


@pytest.mark.parametrize("widget", WIDGETS, ids=lambda p: p.parts[-3])
def test_a_widget_names_no_third_party(widget):
    # Public bodies' pages may not leak their visitors to a CDN: the script loads nothing from anywhere.
    assert re.findall(r"https?://", embed.script(widget).decode()) == []
    assert not re.search(r"\bimport\s*\(|importScripts|<script", embed.script(widget).decode())
