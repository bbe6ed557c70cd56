# ruff: noqa: ARG002 (faust calls every view with the request and the route's parameters)
"""The monitor's web server (faust's): the tables as JSON under /api, the console under /console.

Read-only unless the monitor was started with an operator token: then POSTs that change
something (a rollback, a replay) must carry it in ``X-Operator-Token``. A dry run changes
nothing and needs no token.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import faust
from faust.web import Request, Response, View

from fleetserve.deadletters.operators.filters import DeadLetterFilter
from fleetserve.errors import FleetserveError
from fleetserve.monitor import console
from fleetserve.monitor.replies import confusions, recent_fallbacks

if TYPE_CHECKING:
    from fleetserve.monitor.app import MonitorState

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-Operator-Token"  # noqa: S105 (a header name)
T = TypeVar("T")


def register(app: faust.App, state: MonitorState) -> None:  # noqa: C901 (one view per route)
    config = state.config

    async def blocking(fun: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: fun(*args, **kwargs))

    def authorized(request: Request) -> bool:
        token = config.operator_token
        given = request.headers.get(TOKEN_HEADER, "")
        return bool(token) and hmac.compare_digest(given.encode(), str(token).encode())

    def dl_filter(params: Mapping[str, Any]) -> DeadLetterFilter:
        bots = frozenset(b for b in [str(params.get("bot") or "").strip()] if b)
        reasons = frozenset(r for r in [str(params.get("reason") or "").strip()] if r)
        return DeadLetterFilter(bots=bots, reasons=reasons)

    @app.page("/api/status")
    class Status(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            return self.json(state.status())

    @app.page("/api/overview")
    class Overview(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            return self.json(state.overview())

    @app.page("/api/bots/{bot_id}")
    class Bot(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            return self.json(state.bot(str(kwargs["bot_id"])))

    @app.page("/api/bots/{bot_id}/fallbacks")
    class Fallbacks(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            rows = await blocking(
                recent_fallbacks, config.kafka, config.topics.replies, str(kwargs["bot_id"])
            )
            return self.json({"fallbacks": rows})

    @app.page("/api/bots/{bot_id}/confusions")
    class Confusions(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            shadow = config.topics.shadow_replies
            if shadow is None:
                return self.json({"shadow": None, "top": []})
            found = await blocking(
                confusions, config.kafka, config.topics.replies, shadow, str(kwargs["bot_id"])
            )
            return self.json({"shadow": shadow, **found})

    @app.page("/api/dead-letters")
    class DeadLetters(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            return self.json(await blocking(state.actions.dead_letters, dl_filter(request.query)))

    @app.page("/api/replay")
    class Replay(View):
        async def post(self, request: Request, **kwargs: Any) -> Response:
            body = await request.json()
            dry_run = bool(body.get("dry_run", True))
            if not dry_run and not authorized(request):
                return self.json({"error": "replaying needs the operator token"}, status=403)
            try:
                result = await blocking(
                    state.actions.replay, dl_filter(body), dry_run=dry_run, who="console"
                )
            except (RuntimeError, FleetserveError) as exc:
                return self.json({"error": str(exc)}, status=409)
            return self.json(result)

    @app.page("/api/rollback")
    class Rollback(View):
        async def post(self, request: Request, **kwargs: Any) -> Response:
            if not authorized(request):
                return self.json({"error": "rolling back needs the operator token"}, status=403)
            body = await request.json()
            try:
                record = await blocking(
                    state.actions.operator_rollback, str(body["bot"]), str(body["stage"])
                )
            except (KeyError, FleetserveError) as exc:
                return self.json({"error": str(exc)}, status=409)
            return self.json(record)

    @app.page("/console/")
    class OverviewPage(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            return self.html(console.overview_page(state.overview(), state.status()))

    @app.page("/console/bots/{bot_id}")
    class BotPage(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            detail = state.bot(str(kwargs["bot_id"]))
            return self.html(console.bot_page(detail, state.status()))

    @app.page("/console/dead-letters")
    class DeadLetterPage(View):
        async def get(self, request: Request, **kwargs: Any) -> Response:
            chosen = dl_filter(request.query)
            found = await blocking(state.actions.dead_letters, chosen)
            return self.html(console.dead_letter_page(found, chosen, state.status()))
