"""Answers are checked against the møteplass's own questions; a kommune participant names the municipality."""

import pytest

from .conftest import person

QUESTIONS = [
    {"id": "problemstilling", "text": "Kva problemstilling vil du ta opp?", "kind": "text", "required": True},
    {"id": "diett", "text": "Diett", "kind": "single_choice", "options": ["vegetar", "vegan", "ingen"]},
    {"id": "verkstader", "text": "Kva vil du vere med på?", "kind": "multiple_choice",
     "options": ["open space", "lunsj", "omvising"]},
]
KOMMUNE = {"organisation_type": "kommune", "municipality": {"number": "3201", "name": "Bærum"}}


async def test_valid_answers_are_kept(http, base, tap, create_event, register):
    await create_event(questions=QUESTIONS)
    answers = {"problemstilling": "Korleis skape spenstige innovasjonskommunar?", "diett": "vegan",
               "verkstader": ["open space", "lunsj"]}
    created = await register("innovasjonsjam", person(1, answers=answers, phone="+47 912 34 567", **KOMMUNE))
    assert created["answers"] == answers
    assert created["municipality"] == {"number": "3201", "name": "Bærum"}


@pytest.mark.parametrize("answers, field", [
    ({}, "answers.problemstilling"),
    ({"problemstilling": "x", "diett": "kjøt"}, "answers.diett"),
    ({"problemstilling": "x", "diett": ["vegan"]}, "answers.diett"),
    ({"problemstilling": "x", "verkstader": "lunsj"}, "answers.verkstader"),
    ({"problemstilling": "x", "verkstader": ["dans"]}, "answers.verkstader"),
    ({"problemstilling": "x", "ukjend": "y"}, "answers.ukjend"),
    ({"problemstilling": {"$ne": None}}, "answers.problemstilling"),
])
async def test_answers_that_do_not_fit_the_questions_are_422(http, base, create_event, answers, field):
    await create_event(questions=QUESTIONS)
    async with http.post(f"{base}/events/innovasjonsjam/registrations", json=person(1, answers=answers)) as resp:
        assert resp.status == 422
        fields = [d["field"] for d in (await resp.json())["error"]["details"]]
    assert field in fields
    async with http.get(f"{base}/events/innovasjonsjam") as resp:
        assert (await resp.json())["seats_left"] == 10


async def test_a_kommune_participant_must_name_the_municipality(create_event, register):
    await create_event()
    error = (await register("innovasjonsjam", person(1, organisation_type="kommune"), status=422))["error"]
    assert error["details"][0]["message"] == "Vel kommunen du kjem frå."
    bad = person(1, organisation_type="kommune", municipality={"number": "32", "name": "Bærum"})
    assert (await register("innovasjonsjam", bad, status=422))["error"]["details"][0]["field"] == "municipality.number"


async def test_choice_questions_need_options(http, base, admin_headers):
    from .conftest import event_body
    body = event_body(questions=[{"id": "diett", "text": "Diett", "kind": "single_choice"}])
    async with http.post(f"{base}/events", json=body, headers=admin_headers) as resp:
        assert resp.status == 422
        assert (await resp.json())["error"]["details"][0]["field"] == "questions.0"
