"""Index-server side of trustpub: accept `__token__` uploads that trustpub vouches for.

A client library for index servers, separate from the service: it uses `requests` and
the standard library only and imports nothing else from trustpub.

- `IntrospectionClient`: asks trustpub's introspection endpoint (RFC 7662) whether an
  upload token is active, caches active answers briefly, and fails closed.
- `UploadAuthorizer`: the token and project-scope decisions, and an
  `(username, password) -> bool` check for index servers' authentication hooks.
- `UploadGuard`: WSGI middleware that enforces both before the index sees an upload.
- `pypiserver_launcher`: runs pypiserver with all of the above
  (`python -m app.integrations.pypiserver_launcher ... -- run ...`).

See docs/index-integration.md.
"""

from app.integrations.introspection import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_CACHE_TTL,
    DEFAULT_TIMEOUT,
    TOKEN_USERNAME,
    ActiveToken,
    IntrospectionClient,
    IntrospectionUnavailable,
    normalize_project_name,
)
from app.integrations.multipart import MalformedUpload, MultipartScanner, form_data_boundary
from app.integrations.uploads import (
    Decision,
    UploadAuthorizer,
    UploadGuard,
    project_from_filename,
)

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_CACHE_TTL",
    "DEFAULT_TIMEOUT",
    "TOKEN_USERNAME",
    "ActiveToken",
    "Decision",
    "IntrospectionClient",
    "IntrospectionUnavailable",
    "MalformedUpload",
    "MultipartScanner",
    "UploadAuthorizer",
    "UploadGuard",
    "form_data_boundary",
    "normalize_project_name",
    "project_from_filename",
]
