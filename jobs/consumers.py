"""Live job events over a websocket, with replay of the stored history.

The client connects to /ws/jobs/<id>/?after=<seq> and receives a snapshot of
the job, then every stored event after `seq`, then live events. It
de-duplicates by `seq`, so an event both replayed and sent live shows once.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.exceptions import BadRequest

from jobs.events import event_message, job_group_name, job_snapshot
from jobs.selectors import job_events_after, job_find_for_user
from lathe_common.web.params import int_param

CLOSE_NOT_FOUND = 4404
CLOSE_BAD_REQUEST = 4400


class JobConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        user = self.scope.get("user")
        job = await database_sync_to_async(job_find_for_user)(user, self.job_id) if user else None
        if job is None:
            # Same answer for "not yours" and "does not exist": ids do not leak.
            await self.close(code=CLOSE_NOT_FOUND)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            after = int_param({"after": (query.get("after") or [""])[0]}, "after")
        except BadRequest:
            await self.close(code=CLOSE_BAD_REQUEST)
            return
        self.group = job_group_name(self.job_id)
        # Join before reading history so nothing falls between the two.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        snapshot, history = await database_sync_to_async(self._load)(after)
        await self.send_json({"type": "snapshot", "job": snapshot})
        for message in history:
            await self.send_json(message)

    def _load(self, after: int):
        job = job_find_for_user(self.scope["user"], self.job_id)
        return job_snapshot(job), [event_message(event) for event in job_events_after(job, after)]

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def job_event(self, event: dict) -> None:
        await self.send_json(event["message"])
