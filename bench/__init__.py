"""`make bench`: trustpub against its floors, measured in one run on one machine.

`python -m bench.run` starts everything it measures (redis-server, an HTTPS OIDC
issuer, trustpub under gunicorn, a bare Flask app under the same settings), drives it
with wrk and prints a table; `bench/results.json` keeps the numbers for comparison.
"""
