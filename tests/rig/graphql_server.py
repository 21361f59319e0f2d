"""A GraphQL server as an aiohttp app: graphql-core executes a small library schema.

``POST /graphql`` answers GraphQL over HTTP (``data`` and ``errors`` as JSON);
``POST /unavailable`` answers 503 with a text body, an endpoint that is down. A
middleware logs every request with the client's port, which names its connection.
"""

from __future__ import annotations

from typing import Any, Optional

from aiohttp import web
from graphql import GraphQLResolveInfo, build_schema, graphql

from .request_log import RequestLog

SCHEMA = build_schema(
    """
    type Book { id: Int!, title: String!, author: String! }
    type Query {
      book(id: Int!): Book
      books: [Book!]!
      broken: String
    }
    type Mutation { addBook(title: String!, author: String!): Book! }
    """
)

_SHELF = (
    {"id": 1, "title": "Dune", "author": "Frank Herbert"},
    {"id": 2, "title": "Solaris", "author": "Stanislaw Lem"},
    {"id": 3, "title": "Kindred", "author": "Octavia E. Butler"},
)


class Library:
    """The schema's root value: a shelf of books, reset to the same three per run."""

    def __init__(self) -> None:
        self.shelf: dict[int, dict[str, Any]] = {}
        self.reset()

    def reset(self) -> None:
        self.shelf = {book["id"]: dict(book) for book in _SHELF}

    def book(self, info: GraphQLResolveInfo, id: int) -> Optional[dict[str, Any]]:
        return self.shelf.get(id)

    def books(self, info: GraphQLResolveInfo) -> list[dict[str, Any]]:
        return list(self.shelf.values())

    def broken(self, info: GraphQLResolveInfo) -> str:
        raise ValueError("the catalogue is being rebuilt")  # a field error, data null

    def addBook(self, info: GraphQLResolveInfo, title: str, author: str) -> dict[str, Any]:
        book = {"id": max(self.shelf) + 1, "title": title, "author": author}
        self.shelf[book["id"]] = book
        return book


def graphql_app(log: RequestLog, library: Library) -> web.Application:
    """The aiohttp app: ``/graphql`` and ``/unavailable``, every request logged."""

    @web.middleware
    async def log_request(request: web.Request, handler: Any) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        log.record(request.method, request.path, peer[1] if peer else None)
        response: web.StreamResponse = await handler(request)
        return response

    async def execute(request: web.Request) -> web.Response:
        body = await request.json()
        result = await graphql(
            SCHEMA,
            body["query"],
            root_value=library,
            variable_values=body.get("variables"),
            operation_name=body.get("operationName"),
        )
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [error.formatted for error in result.errors]
        return web.json_response(answer)

    async def unavailable(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=503, text="down for maintenance")

    app = web.Application(middlewares=[log_request])
    app.router.add_post("/graphql", execute)
    app.router.add_post("/unavailable", unavailable)
    return app
