"""The webhook's review behind one of two HTTP servers, for `make bench` to compare them.

`ours` is the operator's own server (webhook/server.py); `aiohttp` is the library it replaced,
serving the same handler. Both run the same review against the same caches, over TLS, on
uvloop, so the difference measured is the HTTP layer's alone.

    python -m usersecrets_dev.webhook_servers {ours,aiohttp} PORT CA_FILE
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import uvloop
from aiohttp import web

from usersecrets.kube.client import connect
from usersecrets.settings import Settings
from usersecrets.webhook import tls
from usersecrets.webhook.certificates import issue_bundle
from usersecrets.webhook.lookups import Lookups
from usersecrets.webhook.review import MUTATE_PATH, admission_handler, reviewer, routes
from usersecrets.webhook.server import serve


async def main(server: str, port: int, ca_file: Path) -> None:
    settings = Settings()
    lookups = Lookups(connect(), settings)
    lookups.start()
    deadline = time.monotonic() + 60
    while not lookups.synced and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    bundle = issue_bundle(["localhost"], ["127.0.0.1"])
    ca_file.write_bytes(bundle.ca_pem)
    context = tls.ssl_context_from_bundle(bundle)
    review = reviewer(lookups, settings)
    if server == "ours":
        await serve(routes(review), context, "127.0.0.1", port)
    else:
        handle = admission_handler(review)

        async def mutate(request: web.Request) -> web.Response:
            answer = await handle(bytearray(await request.read()))
            return web.Response(
                status=answer.status,
                body=answer.body,
                headers={"Content-Type": answer.content_type.decode()},
            )

        app = web.Application()
        app.router.add_post(MUTATE_PATH, mutate)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=["ours", "aiohttp"])
    parser.add_argument("port", type=int)
    parser.add_argument("ca_file", type=Path)
    args = parser.parse_args(sys.argv[1:])
    uvloop.run(main(args.server, args.port, args.ca_file))
