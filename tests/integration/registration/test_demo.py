from services.registration.cli import load
from services.registration.config import RegistrationConfig

from .conftest import registration_app


async def test_demo_loads_the_two_seed_moteplassar_once(settings, tap, http, start_service):
    report = await load(settings, RegistrationConfig())
    assert "møteplass innovasjonsjam-baerum: oppretta" in report
    assert "  Kari Berg: confirmed" in report
    again = await load(settings, RegistrationConfig())
    assert "møteplass innovasjonsjam-baerum: finst frå før" in again
    assert "  Kari Berg: Denne e-postadressa er alt påmeld til møteplassen." in again

    base = await start_service(registration_app(), "registration")
    async with http.get(f"{base}/events") as resp:
        events = {e["slug"]: e for e in await resp.json()}
    jam = events["innovasjonsjam-baerum"]
    assert (jam["capacity"], jam["guests_per_municipality"], jam["seats_left"]) == (90, 1, 87)
    assert events["innovasjonsworkshop-sarpsborg"]["seats_left"] == 36
    await tap.wait_for("event.published", 2)
    await tap.wait_for("registration.confirmed", 7)
