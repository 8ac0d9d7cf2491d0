from services.registration.routes import api


async def test_openapi_is_generated_for_every_route(http, base):
    async with http.get(f"{base}/openapi.json") as resp:
        document = await resp.json()
    routes = {(ep.path, ep.method.lower()) for ep in api.endpoints}
    assert routes == {(path, method) for path, ops in document["paths"].items() for method in ops}
    register = document["paths"]["/events/{slug}/registrations"]["post"]
    assert {"201", "404", "409", "422", "429"} <= set(register["responses"])
    assert "RegistrationIn" in document["components"]["schemas"]
    assert document["paths"]["/events"]["post"]["security"] == [{"bearer": []}]
