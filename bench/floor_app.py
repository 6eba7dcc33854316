"""The HTTP floor: a bare Flask app under exactly trustpub's gunicorn settings.

It answers a POST with a tiny JSON body by parsing the body and answering JSON, and
does nothing else: what a request costs before trustpub does any work of its own.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from flask import Flask, Response, jsonify, request

from app.serving import GunicornApplication


def create_floor_app() -> Flask:
    app = Flask(__name__)

    @app.post("/floor")
    def floor() -> Response:
        body = json.loads(request.get_data(cache=False))
        response = jsonify({"success": True, "echo": len(body)})
        response.headers["Cache-Control"] = "no-store"
        return response

    return app


def runner_arguments(description: str | None) -> argparse.ArgumentParser:
    """The options a floor is started with: those `trustpub serve` passes to gunicorn."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    return parser


def serve_like_trustpub(app: Any, args: argparse.Namespace) -> None:
    """Run `app` under trustpub's own gunicorn runner: the same options on the same DEFAULTS."""
    options = {"bind": args.bind, "workers": args.workers, "threads": args.threads}
    GunicornApplication(app, {**options, "accesslog": None}).run()


def main() -> None:
    serve_like_trustpub(create_floor_app(), runner_arguments(__doc__).parse_args())


if __name__ == "__main__":
    main()
