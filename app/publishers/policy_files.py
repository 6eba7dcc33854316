"""Loading `policies/*.toml`: every error reported with its file and key, then start-up stops."""

from __future__ import annotations

import json
import numbers
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from app.errors import ConfigurationError, InvalidRequest
from app.publishers.model import Publisher, normalize_project_name
from app.publishers.providers import PROVIDERS


class PolicyError(ConfigurationError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("invalid policies:\n  " + "\n  ".join(errors))
        self.errors = errors


# The schema's `projectName` maxLength: how much of a refused name an error repeats.
PROJECT_NAME_MAX = 200


@cache
def policy_schema() -> Mapping[str, Any]:
    text = resources.files("app.publishers").joinpath("policy.schema.json").read_text("utf-8")
    schema: Mapping[str, Any] = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return schema


def normalized_project(name: str) -> str:
    """A project name from a request, checked like a policy's and normalised (PEP 503)."""
    if not Draft202012Validator(policy_schema()["$defs"]["projectName"]).is_valid(name):
        raise InvalidRequest(
            f"{name[:PROJECT_NAME_MAX]!r} is not a valid project name (PEP 508: letters, "
            "digits, . _ -, starting and ending with a letter or digit)"
        )
    return normalize_project_name(name)


def load_policy_dir(
    directory: Path, trusted_issuers: Mapping[str, frozenset[str]]
) -> list[Publisher]:
    """All publishers in `directory`; raises PolicyError listing every problem found.

    `trusted_issuers` maps a provider to its configured issuer URLs: a publisher naming
    an issuer that is not configured could never match and is almost certainly a typo.
    """
    if not directory.is_dir():
        raise PolicyError([f"{directory}: policies directory does not exist"])
    errors: list[str] = []
    publishers: list[Publisher] = []
    for path in sorted(directory.glob("*.toml")):
        publishers.extend(_load_file(path, trusted_issuers, errors))
    errors.extend(find_duplicates(publishers))
    if errors:
        raise PolicyError(errors)
    return publishers


def find_duplicates(publishers: Iterable[Publisher]) -> list[str]:
    seen: dict[tuple[str, ...], Publisher] = {}
    errors = []
    for publisher in publishers:
        first = seen.setdefault(publisher.identity_key, publisher)
        if first is not publisher:
            errors.append(
                f"{publisher.source}: duplicate of {first.source}; list every project of one "
                "publisher in a single 'projects' array"
            )
    return errors


def _load_file(
    path: Path, trusted_issuers: Mapping[str, frozenset[str]], errors: list[str]
) -> list[Publisher]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: cannot read: {exc}")
        return []
    except tomllib.TOMLDecodeError as exc:
        errors.append(f"{path}: invalid TOML: {exc}")
        return []
    schema_errors = policy_schema_errors(document)
    if schema_errors:
        errors.extend(f"{path}: {_key_path(e.absolute_path)}: {e.message}" for e in schema_errors)
        return []
    publishers = []
    for index, entry in enumerate(document["publisher"]):
        source = f"{path}: publisher[{index}]"
        publisher = PROVIDERS[entry["provider"]].parse_publisher(entry, source)
        if publisher.issuer not in trusted_issuers.get(publisher.provider, frozenset()):
            errors.append(
                f"{source}.issuer: {publisher.issuer!r} is not a configured "
                f"{publisher.provider} issuer (see TRUSTPUB_{publisher.provider.upper()}_ISSUERS)"
            )
            continue
        publishers.append(publisher)
    return publishers


def policy_schema_errors(document: Any) -> list[ValidationError]:
    """Every schema error of a policy document (a file, or one registration), path order."""
    # The compiled schema answers "valid?" for a 100,000-publisher file in a fraction of
    # a second, where jsonschema takes about 0.3 ms per publisher; jsonschema still
    # explains every error of a document that is not valid, and decides if it cannot
    # compile.
    compiled = compiled_policy_schema()
    if compiled is not None and _is_valid(compiled, document):
        return []
    validator = Draft202012Validator(policy_schema())
    return sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))


def _key_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


# -- the schema, compiled ----------------------------------------------------------------
#
# jsonschema interprets the schema anew for every value it checks. For the keywords the
# policy schema uses, `compile_schema` builds plain predicates once, with jsonschema's
# Draft 2020-12 semantics (tests/unit/test_policy_schema_compiled.py holds the two to the
# same verdicts). A keyword it does not know makes the whole schema uncompilable, and
# jsonschema alone decides: an unknown keyword is never silently skipped.

Check = Callable[[Any], bool]

# Keywords without any effect on validity; `format` too, as jsonschema checks formats
# only when given a format checker, which trustpub does not.
_ANNOTATIONS = frozenset(
    {"$schema", "$comment", "title", "description", "default", "examples", "deprecated"}
    | {"readOnly", "writeOnly", "format", "$defs"}
)
_TYPES: dict[str, Check] = {
    "array": lambda value: isinstance(value, list),
    "boolean": lambda value: isinstance(value, bool),
    "integer": lambda value: (
        (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, float) and value.is_integer())
    ),
    "null": lambda value: value is None,
    "number": lambda value: isinstance(value, numbers.Number) and not isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
    "string": lambda value: isinstance(value, str),
}


class UncompilableSchema(Exception):
    """The schema uses something `compile_schema` does not implement."""


@cache
def compiled_policy_schema() -> Check | None:
    """The policy schema as one predicate; None if it cannot be compiled (jsonschema then)."""
    try:
        return compile_schema(policy_schema())
    except UncompilableSchema:
        return None


def _is_valid(check: Check, document: Any) -> bool:
    try:
        return check(document)
    except RecursionError:
        return False  # jsonschema then gives the verdict and the errors


def compile_schema(root: Mapping[str, Any]) -> Check:
    """One predicate that is true exactly where jsonschema (Draft 2020-12) finds no error."""
    return _SchemaCompiler(root).compile(root, "#")


class _SchemaCompiler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root
        self._refs: dict[str, Check] = {}

    def compile(self, schema: Any, where: str) -> Check:
        if schema is True:
            return _accept
        if schema is False:
            return _reject
        if not isinstance(schema, dict):
            raise UncompilableSchema(f"{where}: a schema must be an object or a boolean")
        # `then` and `else` are compiled with their `if`; `$id` only at the root, as a
        # nested base URI would change what a $ref below it means.
        known = _KEYWORDS.keys() | _ANNOTATIONS | {"then", "else"}
        unknown = set(schema) - known - ({"$id"} if where == "#" else set())
        if unknown:
            raise UncompilableSchema(f"{where}: unsupported keyword(s) {sorted(unknown)}")
        return _every(
            [
                _KEYWORDS[keyword](self, schema, value, f"{where}/{keyword}")
                for keyword, value in schema.items()
                if keyword in _KEYWORDS
            ]
        )

    def ref(self, ref: Any, where: str) -> Check:
        if not isinstance(ref, str) or not ref.startswith("#") or "%" in ref:
            raise UncompilableSchema(f"{where}: only local JSON pointers are supported")
        refs = self._refs
        if ref not in refs:
            refs[ref] = _reject  # replaced below; only a recursive reference sees it
            refs[ref] = self.compile(self._resolve(ref, where), ref)
        return lambda value: refs[ref](value)

    def _resolve(self, ref: str, where: str) -> Any:
        target: Any = self._root
        for token in ref.split("/")[1:]:
            name = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or name not in target:
                raise UncompilableSchema(f"{where}: {ref} does not resolve")
            target = target[name]
        return target


def _accept(value: Any) -> bool:
    return True


def _reject(value: Any) -> bool:
    return False


def _every(checks: list[Check]) -> Check:
    if not checks:
        return _accept
    if len(checks) == 1:
        return checks[0]

    def check(value: Any) -> bool:
        # A loop rather than all() over a generator: this runs for every value checked.
        for each in checks:  # noqa: SIM110
            if not each(value):
                return False
        return True

    return check


def _type(compiler: _SchemaCompiler, schema: Any, types: Any, where: str) -> Check:
    names = [types] if isinstance(types, str) else types
    if not isinstance(names, list) or not names or not all(name in _TYPES for name in names):
        raise UncompilableSchema(f"{where}: unknown type {types!r}")
    checks = [_TYPES[name] for name in names]
    if len(checks) == 1:
        return checks[0]
    return lambda value: any(check(value) for check in checks)


def _enum(compiler: _SchemaCompiler, schema: Any, options: Any, where: str) -> Check:
    if not isinstance(options, list):
        raise UncompilableSchema(f"{where}: enum must be a list")
    return lambda value: any(_json_equal(value, option) for option in options)


def _const(compiler: _SchemaCompiler, schema: Any, constant: Any, where: str) -> Check:
    return lambda value: _json_equal(value, constant)


def _required(compiler: _SchemaCompiler, schema: Any, names: Any, where: str) -> Check:
    needed = tuple(names)

    def check(value: Any) -> bool:
        if isinstance(value, dict):
            for name in needed:
                if name not in value:
                    return False
        return True

    return check


def _properties(compiler: _SchemaCompiler, schema: Any, properties: Any, where: str) -> Check:
    checks = {
        name: compiler.compile(subschema, f"{where}/{name}")
        for name, subschema in properties.items()
    }

    def check(value: Any) -> bool:
        if isinstance(value, dict):
            for name, item in value.items():
                sub = checks.get(name)
                if sub is not None and not sub(item):
                    return False
        return True

    return check


def _additional_properties(
    compiler: _SchemaCompiler, schema: Any, additional: Any, where: str
) -> Check:
    if "patternProperties" in schema:
        raise UncompilableSchema(f"{where}: patternProperties is not supported")
    known = frozenset(schema.get("properties", {}))
    sub = compiler.compile(additional, where)

    def check(value: Any) -> bool:
        if isinstance(value, dict):
            for name, item in value.items():
                if name not in known and not sub(item):
                    return False
        return True

    return check


def _dependent_required(
    compiler: _SchemaCompiler, schema: Any, dependencies: Any, where: str
) -> Check:
    pairs = [(name, tuple(needs)) for name, needs in dependencies.items()]

    def check(value: Any) -> bool:
        if isinstance(value, dict):
            for name, needs in pairs:
                if name in value and not all(needed in value for needed in needs):
                    return False
        return True

    return check


def _items(compiler: _SchemaCompiler, schema: Any, items: Any, where: str) -> Check:
    if "prefixItems" in schema:
        raise UncompilableSchema(f"{where}: prefixItems is not supported")
    sub = compiler.compile(items, where)

    def check(value: Any) -> bool:
        if isinstance(value, list):
            for item in value:
                if not sub(item):
                    return False
        return True

    return check


def _min_items(compiler: _SchemaCompiler, schema: Any, limit: Any, where: str) -> Check:
    return lambda value: not isinstance(value, list) or len(value) >= limit


def _max_items(compiler: _SchemaCompiler, schema: Any, limit: Any, where: str) -> Check:
    return lambda value: not isinstance(value, list) or len(value) <= limit


def _unique_items(compiler: _SchemaCompiler, schema: Any, unique: Any, where: str) -> Check:
    if not unique:
        return _accept
    return lambda value: not isinstance(value, list) or _all_different(value)


def _min_length(compiler: _SchemaCompiler, schema: Any, limit: Any, where: str) -> Check:
    return lambda value: not isinstance(value, str) or len(value) >= limit


def _max_length(compiler: _SchemaCompiler, schema: Any, limit: Any, where: str) -> Check:
    return lambda value: not isinstance(value, str) or len(value) <= limit


def _pattern(compiler: _SchemaCompiler, schema: Any, pattern: Any, where: str) -> Check:
    try:
        search = re.compile(pattern).search
    except (re.error, TypeError):
        raise UncompilableSchema(f"{where}: {pattern!r} is not a Python regex") from None
    # jsonschema's own test: re.search, so a pattern matches anywhere unless anchored.
    return lambda value: not isinstance(value, str) or search(value) is not None


def _all_of(compiler: _SchemaCompiler, schema: Any, subschemas: Any, where: str) -> Check:
    return _every([compiler.compile(sub, f"{where}/{i}") for i, sub in enumerate(subschemas)])


def _not(compiler: _SchemaCompiler, schema: Any, subschema: Any, where: str) -> Check:
    sub = compiler.compile(subschema, where)
    return lambda value: not sub(value)


def _if(compiler: _SchemaCompiler, schema: Any, condition: Any, where: str) -> Check:
    test = compiler.compile(condition, where)
    then = compiler.compile(schema.get("then", True), f"{where}/then")
    otherwise = compiler.compile(schema.get("else", True), f"{where}/else")
    return lambda value: then(value) if test(value) else otherwise(value)


def _ref(compiler: _SchemaCompiler, schema: Any, ref: Any, where: str) -> Check:
    return compiler.ref(ref, where)


_KEYWORDS: dict[str, Callable[[_SchemaCompiler, Any, Any, str], Check]] = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional_properties,
    "dependentRequired": _dependent_required,
    "items": _items,
    "minItems": _min_items,
    "maxItems": _max_items,
    "uniqueItems": _unique_items,
    "minLength": _min_length,
    "maxLength": _max_length,
    "pattern": _pattern,
    "allOf": _all_of,
    "not": _not,
    "if": _if,
    "$ref": _ref,
}


def _json_equal(one: Any, two: Any) -> bool:
    """Equality as JSON Schema means it: true is not 1, and lists compare item by item."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, bool) or isinstance(two, bool):
        return False  # `one is two` was not true, and true equals only true
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(map(_json_equal, one, two))
    if isinstance(one, dict) and isinstance(two, dict):
        return len(one) == len(two) and all(
            key in two and _json_equal(item, two[key]) for key, item in one.items()
        )
    if isinstance(one, list | dict) or isinstance(two, list | dict):
        return False
    return bool(one == two)


def _all_different(items: list[Any]) -> bool:
    if all(isinstance(item, str) for item in items):
        return len(set(items)) == len(items)
    return not any(_json_equal(items[i], items[j]) for i in range(len(items)) for j in range(i))
