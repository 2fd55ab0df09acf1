"""`usersecrets-ui`: the web UI's process."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from usersecrets.settings import Settings
from usersecrets.ui.app import create_app
from usersecrets.ui.config import UiSettings


def main() -> None:
    settings, platform = UiSettings(), Settings()
    logging.basicConfig(
        level=platform.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stdout,
    )
    # The API client logs requests (headers included) at DEBUG: never, whatever the level.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    if not settings.api_server:
        sys.exit("usersecrets-ui: set USERSECRETS_UI_API_SERVER (or run it in a pod)")
    web.run_app(
        create_app(settings, platform),
        host=settings.host,
        port=settings.port,
        access_log=None,
        print=lambda *_: None,
        shutdown_timeout=5,
    )


if __name__ == "__main__":
    main()
