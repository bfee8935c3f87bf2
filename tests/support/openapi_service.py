"""A small local OpenAPI 3.1 HTTP service (real sockets) for the API-to-MCP tests: serves its own document at
/openapi.json and a pets API."""
from __future__ import annotations

import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dev.emulators import free_port

PETS = {"1": {"id": "1", "name": "Rex", "tag": "dog"}}


def document(base: str) -> dict:
    pet = {"type": "object", "required": ["name"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "tag": {"type": ["string", "null"]}}}
    return {"openapi": "3.1.0", "info": {"title": "Pets", "version": "1"}, "servers": [{"url": base}],
            "paths": {
                "/pets/{petId}": {"get": {"operationId": "getPet", "summary": "Get a pet by id",
                                          "parameters": [{"name": "petId", "in": "path", "required": True,
                                                          "schema": {"type": "string"}}],
                                          "responses": {"200": {"description": "the pet", "content": {
                                              "application/json": {"schema": pet}}}}}},
                "/pets": {"post": {"operationId": "addPet", "summary": "Add a pet",
                                   "requestBody": {"required": True, "content": {"application/json": {
                                       "schema": pet}}},
                                   "responses": {"201": {"description": "created", "content": {
                                       "application/json": {"schema": pet}}}}}},
            }}


class OpenApiService:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[tuple[str, str, dict[str, str]]] = []

        async def openapi(req: Request) -> JSONResponse:
            return JSONResponse(document(self.url))

        async def get_pet(req: Request) -> JSONResponse:
            self.requests.append(("GET", req.url.path, dict(req.headers)))
            pet = PETS.get(req.path_params["pet"])
            return JSONResponse(pet or {"error": "no such pet"}, status_code=200 if pet else 404)

        async def add_pet(req: Request) -> JSONResponse:
            body = await req.json()
            self.requests.append(("POST", req.url.path, dict(req.headers)))
            pet = {"id": str(len(PETS) + 1), **body}
            return JSONResponse(pet, status_code=201)

        app = Starlette(routes=[Route("/openapi.json", openapi), Route("/pets/{pet}", get_pet),
                                Route("/pets", add_pet, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> "OpenApiService":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(5)
