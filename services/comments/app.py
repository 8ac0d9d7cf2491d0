"""Comments service: threads of comments per page or event, with moderation."""

from aiohttp import web

from shared.http import Api
from shared.runtime import create_service_app, run
from shared.settings import Settings, get_settings

SERVICE = "comments"
api = Api("Møteplass comments", description="Comment threads per page or event, with moderation.")


def create_app(settings: Settings | None = None) -> web.Application:
    return create_service_app(SERVICE, settings or get_settings(), api=api)


def main() -> None:
    settings = get_settings()
    run(create_app(settings), settings, SERVICE, settings.comments_port)
