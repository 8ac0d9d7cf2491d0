import aiohttp

from services.comments.app import create_app


async def test_comments_service_reports_health_readiness_and_metrics(start_service, settings, metrics_headers):
    base = await start_service(create_app, "comments")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
            assert (await resp.json())["service"] == "comments"
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["checks"] == {"store": "ok", "broker": "ok", "consumers": "ok"}
        async with http.get(f"{base}/metrics", headers=metrics_headers) as resp:
            assert resp.status == 200
            metrics = await resp.text()
            assert "http_requests_total" in metrics
            assert f'bus_consumers{{queue="{settings.queue_name("comments")}",service="comments"}} 1.0' in metrics
