"""Where nx-27017 (the local stand-in for MongoDB) gets an operation form wrong: the one list of them. Each entry is
asserted by a test in tests/store/ (the form still diverges on nx-27017, and is right on MongoDB); the README's
quirk list is generated from it:

    .venv/bin/python -m tests.store.divergences      # rewrite the README's list

The code does not rely on any of these forms; where it needs what one would give, its store module says how it gets
it otherwise."""

import re
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

VERSION = "nx-27017 0.8.1"
README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = f"  <!-- BEGIN {VERSION} quirks: generated from tests/store/divergences.py, do not edit -->"
END = "  <!-- END quirks -->"


class Divergence(NamedTuple):
    key: str
    readme: str  # one line of the README's list: what differs, and what the code does instead


DIVERGENCES = [
    Divergence("or_beside_conditions_in_writes",
               "every write (findAndModify, update and delete) applies a filter's other conditions only to the "
               "first branch of its `$or` (`find` and `count` get it right): writes use no `$or` beside other "
               "conditions (a notification claim is taken over by a read and an `update_one` on `_id`, status and "
               "attempts, a compare-and-set both get right)."),
    Divergence("expr_beside_conditions",
               "a filter with `$expr` ignores its other conditions: free seats are a counter (`free`), not an "
               "`$expr` on the array sizes."),
    Divergence("push_subdocument",
               "`$push` of a sub-document stores a JSON string: `shared.outbox.add` appends with `$addToSet`."),
    Divergence("add_to_set_missing_array",
               "`$addToSet` does not create a missing array: documents are created with their `outbox` array."),
    Divergence("datetime_by_update_operator",
               "a datetime written by an update operator (`$set`, `$min`, `$max`) at the top level becomes a string "
               "(inside a sub-document or an array it stays a datetime): changing times are stored as Unix seconds "
               "(`*_ts`) or in a sub-document."),
    Divergence("boolean_by_update_operator",
               "a boolean written by an update operator (`$set`) at the top level reads back as 1 or 0 (inserted, "
               "or inside a sub-document or an array, it stays a boolean; equality filters on `true` and `false` "
               "still match it): flags are read by their truth, or as booleans (the comments store's `from_doc`)."),
    Divergence("set_on_insert_in_find_and_modify",
               "findAndModify upserts ignore `$setOnInsert` (`update_one` and bulk upserts honour it): what a new "
               "document needs is written by an upsert's equality filter, by `update_one`, or by a bulk write."),
    Divergence("duplicate_key_in_find_and_modify",
               "a findAndModify that would break a unique index neither writes nor raises a duplicate key error; it "
               "answers as if nothing matched: the store tells a duplicate from a miss by reading."),
    Divergence("range_inside_array",
               "range queries on fields inside arrays match nothing: such entries are filtered in code."),
    Divergence("array_position_in_path",
               "array positions in paths (`waitlist.0`) match nothing: membership is tested with `{array: x}` and "
               "`$nin`."),
    Divergence("object_id_outside_id",
               "ObjectIds outside `_id` do not match: references between documents are id strings."),
    Divergence("current_date_not_comparable",
               "a date written by `$currentDate` reads back as a datetime but no range query matches it."),
    Divergence("compound_index_on_id",
               "an index on `_id` with other fields breaks inserts: comments sort by `order`, a copy of the id."),
    Divergence("index_listing",
               "`list_indexes` names indexes its own way and leaves out `partialFilterExpression` and `sparse`: "
               "indexes are found by their keys."),
]
BY_KEY = {d.key: d for d in DIVERGENCES}


def readme_block() -> str:
    """The README's list, as sub-items of its paragraph on nx-27017 (wrapped as the rest of it)."""
    lines = [BEGIN]
    for divergence in DIVERGENCES:
        lines += textwrap.wrap(divergence.readme, 116, initial_indent="  - ", subsequent_indent="    ",
                               break_on_hyphens=False)
    return "\n".join([*lines, END])


def current(text: str) -> str | None:
    found = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), text, re.DOTALL)
    return found.group(0) if found else None


if __name__ == "__main__":
    text = README.read_text()
    old = current(text)
    if old is None:
        sys.exit(f"README.md has no block starting {BEGIN}")
    README.write_text(text.replace(old, readme_block()))
