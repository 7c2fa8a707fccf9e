"""The receiver of the automation benchmark: a plain FastAPI endpoint, the same for mlyard and for the floor.

    python benchmarks/webhook_receiver.py PORT SECRET

``POST /hook`` checks the signature (``X-Mlyard-Signature``), notes when the POST arrived and the
event's id and time, and answers 200. ``GET /count`` says how many arrived, ``GET /receipts`` returns
them; ``POST /reset`` forgets them.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response

from mlyard.automation.signatures import verify_signature


def make_app(secret: str) -> FastAPI:
    app = FastAPI()
    receipts: list[tuple[int, int, float]] = []  # event id, event time (ms), arrival (unix seconds)
    refused: list[int] = []

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.body()
        arrived = time.time()
        if not verify_signature(secret, body, request.headers.get("x-mlyard-timestamp"),
                                request.headers.get("x-mlyard-signature")):
            refused.append(1)
            return Response(status_code=401)
        event = json.loads(body)
        receipts.append((event["id"], event["at"], arrived))
        return Response(status_code=200)

    @app.get("/count")
    async def count() -> dict[str, Any]:
        return {"count": len(receipts), "refused": len(refused)}

    @app.get("/receipts")
    async def get_receipts() -> dict[str, Any]:
        return {"receipts": receipts, "refused": len(refused)}

    @app.post("/reset")
    async def reset() -> dict[str, Any]:
        receipts.clear()
        refused.clear()
        return {}

    return app


if __name__ == "__main__":
    uvicorn.run(make_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
