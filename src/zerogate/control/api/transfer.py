"""`/api/v1/import` and `/api/v1/export`: the whole inventory as one document.

The import is all or nothing: the document is validated as a whole against itself and the
store (every problem reported, with its path), then applied in one transaction. While it
applies, the answer streams progress lines (NDJSON) so the CLI can draw a progress bar.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import StreamingResponse

from zerogate.control.deps import AdminCaller, AnyCaller, DbSession, database
from zerogate.control.errors import COMMON_RESPONSES, error
from zerogate.core.inventory.document import IMPORTABLE, Document, validate_document
from zerogate.core.inventory.kinds import file_section
from zerogate.store.db import Database
from zerogate.store.inventory import Inventory

_DONE = object()
log = logging.getLogger("zerogate.control.import")


def _apply_in_thread(db: Database, actor: str, document: Document) -> Iterator[bytes]:
    """Run the import in a worker thread, yielding its progress as NDJSON lines."""
    events: queue.Queue[object] = queue.Queue()

    def work() -> None:
        try:
            with db.transaction() as session:
                counts = Inventory(session, actor).apply_document(
                    document, progress=lambda done: events.put({"done": done})
                )
            events.put({"result": counts})
        except Exception as exc:  # reported to the client; the transaction rolled back
            log.exception("inventory import failed; rolled back")
            events.put({"error": f"import failed, nothing was written: {type(exc).__name__}"})
        finally:
            events.put(_DONE)

    threading.Thread(target=work, name="inventory-import", daemon=True).start()
    yield (json.dumps({"total": document.count()}) + "\n").encode()
    while (event := events.get()) is not _DONE:
        yield (json.dumps(event) + "\n").encode()


def router() -> APIRouter:
    api = APIRouter(tags=["inventory"], responses=COMMON_RESPONSES)

    @api.post(
        "/import",
        operation_id="import_inventory",
        summary="Create or update a whole inventory in one transaction",
        responses={
            200: {
                "content": {"application/x-ndjson": {}},
                "description": "progress lines, then a result or error line",
            }
        },
    )
    def import_inventory(
        body: Annotated[dict[str, Any], Body(description="sections like apps:, users:")],
        who: AdminCaller,
        session: DbSession,
        db: Annotated[Database, Depends(database)],
        dry_run: Annotated[bool, Query()] = False,
    ) -> Any:
        existing = Inventory(session, who.actor).existing()
        document, problems = validate_document(body, existing)
        if document is None:
            return error(
                422, f"{len(problems)} problem(s) in the document; nothing was written", problems
            )
        if dry_run:
            return {"valid": True, "total": document.count()}
        return StreamingResponse(
            _apply_in_thread(db, who.actor, document), media_type="application/x-ndjson"
        )

    @api.get(
        "/export", operation_id="export_inventory", summary="The whole inventory as one document"
    )
    def export_inventory(who: AnyCaller, session: DbSession) -> dict[str, list[dict[str, object]]]:
        inventory = Inventory(session, who.actor)
        return {
            file_section(kind): inventory.page(kind, limit=10**9, offset=0)[0]
            for kind in IMPORTABLE
        }

    return api
