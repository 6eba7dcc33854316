"""The HTTP floor: a bare Flask app under exactly trustpub's gunicorn settings.

It answers a POST with a tiny JSON body by parsing the body and answering JSON, and
does nothing else: what a request costs before trustpub does any work of its own.
"""

from __future__ import annotations

import argparse
import json

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    # The same options `trustpub serve` passes, on top of the same DEFAULTS.
    options = {"bind": args.bind, "workers": args.workers, "threads": args.threads}
    GunicornApplication(create_floor_app(), {**options, "accesslog": None}).run()


if __name__ == "__main__":
    main()
