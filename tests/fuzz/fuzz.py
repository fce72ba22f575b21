"""Schema-driven fuzzing of a running gateway's /graphql.

Every request is drawn by Hypothesis from schema.graphql: valid queries and
mutations (hypothesis-graphql), documents with one schema violation, the
root fields with hostile variables, valid documents cut and spliced at
random, and hostile request envelopes and bodies, sent over POST and GET
with assorted media types, with a user's token, an admin's, a garbled one
or none. Every answer must be below 500, JSON where it says so, every error
must carry an `extensions.code` and none may be `INTERNAL_SERVER_ERROR`, and
a live token must never be told `UNAUTHENTICATED`.

Identities come from a mint command (`music-gateway token ...`, given a
`--sub` and, for the admin, a `--scope`); each is loaded with songs and
playlists through mutations. When a drawn `deleteMe` or `deleteUser` deletes
one, a new one takes its place, so the mutations keep finding rows.

Prints a JSON summary on stdout; exits 1 when an answer broke a rule, with
the request and the answer (Hypothesis's shrunk one, and the first seen).

    fuzz.py --url http://127.0.0.1:8080/graphql \
        --mint "music-gateway token --data-dir ./data" --examples 500 --seed 1
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shlex
import subprocess
import sys
import threading
import time
import urllib.parse
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import graphql
import hypothesis_graphql as hgql
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisWarning
from hypothesis_graphql import nodes

# A failing request may hold a 60 KB document; its repr is wanted all the same.
warnings.filterwarnings("ignore", message="Generating overly large repr", category=HypothesisWarning)

ADMIN_SCOPE = "write:app_metadata"
PROBE = "{ me { id } }"
# Rows of the seeded identities have small ids; fuzzed inserts add more.
ROW_IDS = st.integers(min_value=1, max_value=80).map(str)
SPECIAL_IDS = [
    "",
    " ",
    "0",
    "-1",
    "01",
    "+1",
    "1 ",
    "1.0",
    "1e3",
    "0x10",
    "\u0661",
    "NaN",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "99999999999999999999999999",
    "\x00",
    "1\x00",
    "'; DROP TABLE songs; --",
    "%",
    "_",
    "demo|listener",
    "auth0|nobody",
    "fuzz|user-0",
    "fuzz|admin-0",
    "fuzz|user-1",
]


class Broken(AssertionError):
    """An answer that breaks one of the rules."""


# ---------------------------------------------------------------- strategies

NAMES = st.from_regex(r"\A[_A-Za-z][_0-9A-Za-z]{0,12}\Z")
ID_TEXT = st.one_of(ROW_IDS, st.sampled_from(SPECIAL_IDS), st.text(max_size=40))
ID_INT = st.one_of(
    *[st.integers(min_value=-5, max_value=200)] * 5,
    # Past i64: async-graphql refuses these as IDs.
    st.integers(min_value=-(2**70), max_value=2**70),
)


def long_text(n: int) -> str:
    return "\u00e9" * n


def utc(moment) -> str:
    return moment.isoformat() + "Z"


def utf8(text: str) -> bytes:
    return text.encode("utf-8")


# Named functions, not lambdas, throughout: Hypothesis reads a lambda's
# source to describe it, which costs more than drawing the example.
# Long strings, for the length limits and the profile's 10 KB.
LONG_TEXT = st.integers(min_value=0, max_value=20_000).map(long_text)
TEXT = st.one_of(st.text(), LONG_TEXT)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(
            st.one_of(st.text(max_size=10), st.sampled_from([".", "$", "a.b", "$set", "__proto__"])),
            inner,
            max_size=6,
        )
    ),
    max_leaves=25,
)
DATETIMES = st.one_of(
    st.datetimes().map(utc),
    st.sampled_from(["", "2026-13-40T25:61:61Z", "now", "0000-00-00T00:00:00Z"]),
    st.text(max_size=30),
)


def literal(value) -> graphql.ValueNode:
    """A GraphQL literal for a JSON value (object keys must be names there)."""
    if value is None:
        return nodes.Null
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    if isinstance(value, str):
        return nodes.String(value)
    if isinstance(value, list):
        return nodes.List([literal(v) for v in value])
    return nodes.Object(
        [graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=literal(v)) for k, v in value.items()]
    )


LITERAL_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(NAMES, inner, max_size=6),
    max_leaves=25,
).map(literal)

CUSTOM_SCALARS = {
    "ID": st.one_of(ID_TEXT.map(nodes.String), ID_INT.map(nodes.Int)),
    "JSON": LITERAL_JSON,
    "DateTime": DATETIMES.map(nodes.String),
}


def one_in(draw, n: int) -> bool:
    """True once in `n` draws: Hypothesis draws the low end of an integer
    range far more often than the rest, but picks from a list evenly."""
    return draw(st.sampled_from([False] * (n - 1) + [True]))


def unwrap(type_):
    while isinstance(type_, graphql.GraphQLWrappingType):
        type_ = type_.of_type
    return type_


def is_leaf(type_) -> bool:
    return isinstance(unwrap(type_), (graphql.GraphQLScalarType, graphql.GraphQLEnumType))


TYPED_JSON: dict = {}


def typed_json(type_, depth: int = 0) -> st.SearchStrategy:
    """JSON for a variable of `type_`: mostly of the right shape, sometimes not."""
    # Built once a type: building strategies costs more than drawing from them.
    key = (str(type_), depth)
    if key not in TYPED_JSON:
        TYPED_JSON[key] = typed_json_uncached(type_, depth)
    return TYPED_JSON[key]


def typed_json_uncached(type_, depth: int) -> st.SearchStrategy:
    if depth > 6:
        return ANY_JSON
    if isinstance(type_, graphql.GraphQLNonNull):
        return st.one_of(*[typed_json(type_.of_type, depth + 1)] * 6, st.none(), ANY_JSON)
    shaped: st.SearchStrategy
    if isinstance(type_, graphql.GraphQLList):
        item = typed_json(type_.of_type, depth + 1)
        shaped = st.one_of(st.lists(item, max_size=8), st.lists(item, min_size=95, max_size=130), item)
    elif isinstance(type_, graphql.GraphQLInputObjectType):
        required = {
            n: typed_json(f.type, depth + 1)
            for n, f in type_.fields.items()
            if graphql.is_required_input_field(f)
        }
        optional = {
            n: typed_json(f.type, depth + 1)
            for n, f in type_.fields.items()
            if not graphql.is_required_input_field(f)
        }
        shaped = st.fixed_dictionaries(required, optional=optional) | st.dictionaries(
            st.sampled_from(sorted(type_.fields) + ["unknown", ""]), ANY_JSON, max_size=4
        )
    elif isinstance(type_, graphql.GraphQLEnumType):
        shaped = st.sampled_from(sorted(type_.values)) | st.text(max_size=12)
    elif type_.name == "ID":
        shaped = ID_TEXT | ID_INT
    elif type_.name == "Int":
        shaped = st.integers(min_value=-5, max_value=200) | st.integers(min_value=-(2**40), max_value=2**40)
    elif type_.name == "Float":
        shaped = st.floats(allow_nan=False, allow_infinity=False)
    elif type_.name == "Boolean":
        shaped = st.booleans()
    elif type_.name == "String":
        shaped = TEXT
    elif type_.name == "DateTime":
        shaped = DATETIMES
    else:
        shaped = ANY_JSON
    return st.one_of(*[shaped] * 6, st.none(), ANY_JSON)


def leaf_selection(type_) -> str:
    """`{ __typename <the leaves without required arguments> }`, or nothing for a leaf."""
    named = unwrap(type_)
    if is_leaf(named):
        return ""
    leaves = [
        name
        for name, f in named.fields.items()
        if is_leaf(f.type) and not any(graphql.is_required_argument(a) for a in f.args.values())
    ]
    return " { " + " ".join(["__typename", *leaves]) + " }"


def with_variables(schema: graphql.GraphQLSchema) -> st.SearchStrategy:
    """A root field whose arguments all come from variables, and the variables' JSON."""
    roots = []
    for op, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        for name, f in root.fields.items():
            if f.args:
                roots.append((op, name, f))

    @st.composite
    def build(draw):
        op, name, f = draw(st.sampled_from(roots))
        defs = ", ".join(f"${a}: {arg.type}" for a, arg in f.args.items())
        args = ", ".join(f"{a}: ${a}" for a in f.args)
        document = f"{op} Fuzz({defs}) {{ {name}({args}){leaf_selection(f.type)} }}"
        variables = {}
        for a, arg in f.args.items():
            if not one_in(draw, 10):
                variables[a] = draw(typed_json(arg.type))
        if one_in(draw, 10):
            variables[draw(st.text(max_size=8))] = draw(ANY_JSON)
        return document, variables, "Fuzz"

    return build()


SPLICES = [
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    "...",
    "$",
    "@",
    "!",
    "=",
    ",",
    '"',
    '"""',
    "#",
    "\\",
    "\n",
    "\x00",
    "\ufeff",
    "query",
    "mutation",
    "subscription",
    "fragment F on Me { id }",
    "...F",
    "... on Me { id }",
    "... on Query { me { id } }",
    "@skip(if: true)",
    "@include(if: $x)",
    "@defer",
    "@stream(initialCount: 1)",
    "($x: Int = 1)",
    "__typename",
    "__schema { types { name fields { name } } }",
    '__type(name: "Me") { name }',
    "first: -1",
    "first: 0",
    "first: 2147483647",
    "first: 2147483648",
    'after: ""',
    'after: "YXJyYXljb25uZWN0aW9uOjk5OTk5"',
    "a: me { id }",
    "me { id }",
    "1e999",
    "-0",
    "0x1",
    '"\\u0000"',
    '"\\uD800"',
    '"\\u{10FFFF}"',
    "query A { me { id } } query B { me { id } }",
    "subscription { me { id } }",
    "featuredPlaylists(first: 100) { nodes { songs(first: 100) { nodes { id } } } }",
]


def spliced(documents: st.SearchStrategy) -> st.SearchStrategy:
    """A valid document with a few random cuts, copies and insertions."""

    @st.composite
    def build(draw):
        text = draw(documents)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(text)))
            kind = draw(st.sampled_from(range(4)))
            if kind == 0:
                text = text[:at] + draw(st.sampled_from(SPLICES) | st.text(max_size=6)) + text[at:]
            elif kind == 1:
                end = draw(st.integers(at, len(text)))
                text = text[:at] + text[end:]
            elif kind == 2:
                end = draw(st.integers(at, min(len(text), at + 200)))
                text = text[:end] + text[at:end] + text[end:]
            else:
                text = text[:at] + draw(st.sampled_from(SPLICES)) * draw(st.integers(2, 40)) + text[at:]
        return text

    return build()


@dataclass
class Case:
    kind: str
    who: str  # "user", "admin", "none" or "garbled"
    token: str | None = None  # the garbled one
    method: str = "POST"
    body: object = None  # a JSON value, or bytes sent as they are
    document: str | None = None
    variables: object = None
    operation_name: object = None
    content_type: str | None = "application/json"
    accept: str | None = None
    extra_headers: dict = field(default_factory=dict)

    def describe(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "who": self.who,
                "token": self.token,
                "method": self.method,
                "content_type": self.content_type,
                "accept": self.accept,
                "headers": self.extra_headers,
                "document": self.document,
                "variables": self.variables,
                "operationName": self.operation_name,
                "body": self.body.decode("utf-8", "replace") if isinstance(self.body, bytes) else self.body,
            },
            ensure_ascii=False,
            default=str,
        )


# What clients send, mostly; now and then what the gateway must refuse (406).
ACCEPTS = [
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    "application/json",
    "application/json",
    "application/graphql-response+json",
    "application/graphql-response+json, application/json;q=0.9",
    "*/*",
    "application/*",
    "multipart/mixed;deferSpec=20220824, application/graphql-response+json, application/json",
    "text/html",
    "text/event-stream",
    "application/xml",
    "application/json;q=0",
    "",
]
CONTENT_TYPES = [
    "application/json",
    "application/json",
    "application/json",
    "application/json; charset=utf-8",
    "application/graphql-response+json",
    "application/graphql",
    "text/plain",
    None,
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin1",
]
GARBLED_TOKENS = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300),
    st.sampled_from(["", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "null", "Bearer"]),
)


def cases(schema: graphql.GraphQLSchema, anonymous: bool) -> st.SearchStrategy[Case]:
    queries = hgql.queries(schema, custom_scalars=CUSTOM_SCALARS)
    mutations = hgql.mutations(schema, custom_scalars=CUSTOM_SCALARS)
    negative = hgql.from_schema(schema, custom_scalars=CUSTOM_SCALARS, mode=hgql.Mode.NEGATIVE)
    valid = queries | mutations
    variables_cases = with_variables(schema)
    spliced_cases = spliced(valid)
    kinds = [
        "query",
        "query",
        "mutation",
        "mutation",
        "mutation",
        "negative",
        "variables",
        "variables",
        "spliced",
        "envelope",
        "raw",
    ]

    @st.composite
    def build(draw) -> Case:
        kind = draw(st.sampled_from(kinds))
        if anonymous:
            who = draw(st.sampled_from(["none"] * 9 + ["garbled"]))
        else:
            who = draw(st.sampled_from(["user"] * 7 + ["admin"] * 3))
        case = Case(kind=kind, who=who)
        if who == "garbled":
            case.token = draw(GARBLED_TOKENS)
        if kind == "query":
            case.document = draw(queries)
        elif kind == "mutation":
            case.document = draw(mutations)
        elif kind == "negative":
            case.document = draw(negative)
        elif kind == "variables":
            case.document, case.variables, case.operation_name = draw(variables_cases)
        elif kind == "spliced":
            case.document = draw(spliced_cases)
        elif kind == "envelope":
            envelope = {}
            if not one_in(draw, 5):
                envelope["query"] = draw(valid | ANY_JSON)
            for key in ("variables", "operationName", "extensions"):
                if draw(st.booleans()):
                    envelope[key] = draw(ANY_JSON)
            if one_in(draw, 4):
                envelope["extensions"] = {
                    "persistedQuery": {
                        "version": draw(st.sampled_from([1, 1, 2, 0, "1", None])),
                        "sha256Hash": draw(
                            st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
                            | st.text(max_size=70)
                        ),
                    }
                }
            case.body = [envelope, envelope] if one_in(draw, 8) else envelope
        else:
            case.body = draw(
                st.binary(max_size=400)
                | st.text(max_size=400).map(utf8)
                | st.sampled_from(
                    [
                        b"",
                        b"{",
                        b"[]",
                        b"null",
                        b'{"query": "{ me { id } }"',
                        b'{"query": 1e99999}',
                        b"{" * 40 + b"}" * 40,
                        b'"' + b"\\" * 100,
                    ]
                )
            )
        # Mostly the transport clients use; now and then another.
        if case.body is None and one_in(draw, 6):
            case.method = "GET"
            case.content_type = None
        elif one_in(draw, 6):
            case.content_type = draw(st.sampled_from(CONTENT_TYPES))
        case.accept = draw(st.sampled_from(ACCEPTS))
        if case.method == "GET" or one_in(draw, 8):
            # Lets a GET (or a POST of another type) past CSRF prevention.
            case.extra_headers["apollo-require-preflight"] = "true"
        if one_in(draw, 16):
            case.extra_headers["if-none-match"] = draw(st.sampled_from(['"0"', "*", 'W/"x"', ""]))
        if one_in(draw, 16):
            case.extra_headers["x-request-id"] = draw(
                st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)
            )
        if case.body is None and one_in(draw, 8) and case.operation_name is None:
            case.operation_name = draw(st.none() | st.text(max_size=10) | ANY_JSON)
        return case

    return build()


# ------------------------------------------------------------------- gateway


class Link:
    """One kept-alive connection to the gateway."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self.connection: http.client.HTTPConnection | None = None

    def send(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, dict, bytes]:
        last = None
        for _ in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                try:
                    self.connection.request(method, path, body=body, headers=headers)
                except (BrokenPipeError, ConnectionResetError):
                    # A server may refuse a request (a body too large, or of
                    # the wrong type) before reading all of its body, and
                    # close the connection: its answer is there to read all
                    # the same, as HTTP/1.1 allows.
                    pass
                response = self.connection.getresponse()
                data = response.read()
                answer = (response.status, {k.lower(): v for k, v in response.getheaders()}, data)
                if response.will_close:
                    self.connection.close()
                    self.connection = None
                return answer
            except (OSError, http.client.HTTPException) as error:
                # A kept-alive connection the server has closed since: one
                # retry on a new one tells that from a dead server.
                last = error
                self.connection.close()
                self.connection = None
        raise Broken(f"no answer: {last!r}")


class Gateway:
    """The gateway over `concurrency` connections, and the identities."""

    def __init__(self, url: str, mint: list[str] | None, concurrency: int = 1):
        parsed = urllib.parse.urlsplit(url)
        self.path = parsed.path or "/graphql"
        self.links = [Link(parsed.hostname, parsed.port or 80) for _ in range(concurrency)]
        self.pool = ThreadPoolExecutor(max_workers=concurrency) if concurrency > 1 else None
        self.mint_command = mint
        self.identities: dict[str, tuple[str, str]] = {}
        self.minted = {"user": 0, "admin": 0}
        self.replaced = 0

    def send(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, dict, bytes]:
        return self.links[0].send(method, path, body, headers)

    def send_all(self, method: str, path: str, body: bytes | None, headers: dict) -> list:
        """The same request on every connection at once: concurrent writes of
        one user race for the same rows. Answers each answer or `Broken`."""
        if self.pool is None:
            return [self.send(method, path, body, headers)]
        start = threading.Barrier(len(self.links))

        def on(link: Link):
            start.wait()
            try:
                return link.send(method, path, body, headers)
            except Broken as error:
                return error

        return list(self.pool.map(on, self.links))

    def post(self, token: str | None, query: str, variables=None) -> dict:
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        status, _, data = self.send("POST", self.path, body, headers)
        try:
            return {"status": status, **json.loads(data)}
        except ValueError:
            return {"status": status, "raw": data.decode("utf-8", "replace")}

    def mint(self, role: str) -> tuple[str, str]:
        sub = f"fuzz|{role}-{self.minted[role]}"
        self.minted[role] += 1
        argv = [*self.mint_command, "--sub", sub]
        if role == "admin":
            argv += ["--scope", ADMIN_SCOPE]
        token = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()
        self.seed(token)
        return sub, token

    def ok(self, token: str, query: str, variables=None) -> dict:
        answer = self.post(token, query, variables)
        if answer["status"] != 200 or "errors" in answer:
            raise RuntimeError(f"seeding failed: {query} -> {answer}")
        return answer["data"]

    def seed(self, token: str) -> None:
        """Songs, playlists of them, plays (enough for playlist_editor at the
        tests' threshold) and preferences, as an app would leave them: in
        three requests, since a mutation's root fields run one by one."""
        names = ["One", "Deux \u00e9", "\u6f22\u5b57", "\U0001f3b5", "Four Four", "Six"]
        genres = ["jazz", "rock", None]
        songs = " ".join(
            f"s{n}: addSong(input: {{name: {json.dumps(name, ensure_ascii=False)}, "
            f'artist: "Artist {n % 3}", genre: {json.dumps(genres[n % 3])}}}) {{ id }}'
            for n, name in enumerate(names)
        )
        data = self.ok(
            token,
            f"mutation($me: UpdateMeInput!) {{ updateMe(input: $me) {{ id }} {songs} }}",
            {
                "me": {
                    "displayName": "Fuzz \u00e9\u6f22",
                    "favGenre": "jazz",
                    "preferences": {"theme": "dark", "nested": {"a": [1, 2]}},
                }
            },
        )
        ids = [data[f"s{n}"]["id"] for n in range(len(names))]
        data = self.ok(
            token,
            'mutation($a: [ID!], $b: [ID!]) { mix: createPlaylist(input: {name: "Mix", songIds: $a}) { id } '
            'all: createPlaylist(input: {name: "All", songIds: $b}) { id } '
            'empty: createPlaylist(input: {name: "Empty"}) { id } }',
            {"a": ids[:4], "b": ids},
        )
        plays = " ".join(f"p{n}: recordPlay(playlistId: $p) {{ plays }}" for n in range(6))
        self.ok(token, f"mutation($p: ID!) {{ {plays} }}", {"p": data["mix"]["id"]})

    def identity(self, role: str) -> tuple[str, str]:
        if role not in self.identities:
            self.identities[role] = self.mint(role)
        return self.identities[role]

    def replace_deleted(self) -> None:
        """Replaces each identity whose account a drawn mutation deleted."""
        for role, (_, token) in list(self.identities.items()):
            answer = self.post(token, PROBE)
            if codes(answer) == ["UNAUTHENTICATED"]:
                self.identities[role] = self.mint(role)
                self.replaced += 1


def codes(answer: dict) -> list:
    errors = answer.get("errors")
    if not isinstance(errors, list):
        return []
    return [
        e.get("extensions", {}).get("code")
        if isinstance(e, dict) and isinstance(e.get("extensions"), dict)
        else None
        for e in errors
    ]


# -------------------------------------------------------------------- checks


@dataclass
class Stats:
    examples: int = 0
    requests: int = 0
    by_kind: dict = field(default_factory=dict)
    statuses: dict = field(default_factory=dict)
    codes: dict = field(default_factory=dict)
    # How far the requests got: some data resolved, and all of it.
    with_data: int = 0
    without_errors: int = 0


def request_of(gateway: Gateway, case: Case) -> tuple[str, str, bytes | None, dict]:
    headers = dict(case.extra_headers)
    if case.who in ("user", "admin"):
        headers["authorization"] = f"Bearer {gateway.identity(case.who)[1]}"
    elif case.who == "garbled":
        headers["authorization"] = f"Bearer {case.token}"
    if case.accept is not None:
        headers["accept"] = case.accept
    if case.method == "GET":
        params = {"query": case.document}
        if case.variables is not None:
            params["variables"] = json.dumps(case.variables)
        if isinstance(case.operation_name, str):
            params["operationName"] = case.operation_name
        return "GET", f"{gateway.path}?{urllib.parse.urlencode(params)}", None, headers
    if case.content_type is not None:
        headers["content-type"] = case.content_type
    if isinstance(case.body, bytes):
        body = case.body
    elif case.body is not None:
        body = json.dumps(case.body).encode()
    else:
        envelope = {"query": case.document}
        if case.variables is not None:
            envelope["variables"] = case.variables
        if case.operation_name is not None:
            envelope["operationName"] = case.operation_name
        body = json.dumps(envelope).encode()
    return "POST", gateway.path, body, headers


def judge(case: Case, status: int, headers: dict, data: bytes, deletes: bool) -> dict | None:
    """Raises `Broken` when the answer breaks a rule; answers the JSON body.

    `deletes`: the document may delete the caller's account, after which its
    later fields are rightly `UNAUTHENTICATED`."""

    def broken(why: str):
        shown = data[:4000].decode("utf-8", "replace")
        raise Broken(
            f"{why}\nrequest: {case.describe()}\nanswer: HTTP {status} {headers.get('content-type')}: {shown}"
        )

    if status >= 500:
        broken(f"HTTP {status}")
    content_type = headers.get("content-type", "")
    if "json" not in content_type:
        return None
    try:
        answer = json.loads(data)
    except ValueError:
        broken("a JSON content type with a body that is not JSON")
    if not isinstance(answer, dict):
        broken("a JSON answer that is not an object")
    errors = answer.get("errors", [])
    if not isinstance(errors, list):
        broken("`errors` is not a list")
    for error in errors:
        code = (
            error.get("extensions", {}).get("code")
            if isinstance(error, dict) and isinstance(error.get("extensions"), dict)
            else None
        )
        if not isinstance(code, str):
            broken("an error without extensions.code")
        if code == "INTERNAL_SERVER_ERROR":
            broken("INTERNAL_SERVER_ERROR")
        if code == "UNAUTHENTICATED" and case.who in ("user", "admin") and not deletes:
            broken("UNAUTHENTICATED for a live token")
    return answer


def run(args) -> int:
    # stdout is the summary's alone: whatever Hypothesis reports goes to stderr.
    summary_out = sys.stdout
    sys.stdout = sys.stderr
    sdl = open(args.schema, encoding="utf-8").read()
    schema = graphql.build_schema(sdl)
    gateway = Gateway(args.url, shlex.split(args.mint) if args.mint else None, args.concurrency)
    if not args.anonymous and gateway.mint_command is None:
        print("fuzz.py: --mint is needed unless --anonymous", file=sys.stderr)
        return 2
    strategy = cases(schema, args.anonymous)
    stats = Stats()
    failures: list[str] = []
    started = time.monotonic()
    deadline = started + args.seconds if args.seconds else None
    last_report = started
    trace = open(args.trace, "w", encoding="utf-8") if args.trace else None

    def out_of_budget() -> bool:
        if deadline is not None:
            return time.monotonic() >= deadline
        return stats.examples >= args.examples

    def record(case: Case, answer: dict | None, status: int, data: bytes) -> None:
        if trace is not None:
            trace.write(
                json.dumps(
                    {
                        "request": json.loads(case.describe()),
                        "status": status,
                        "answer": data[:2000].decode("utf-8", "replace"),
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
        if answer is not None:
            for code in codes(answer):
                stats.codes[str(code)] = stats.codes.get(str(code), 0) + 1
            if answer.get("data") is not None:
                stats.with_data += 1
                if not answer.get("errors"):
                    stats.without_errors += 1

    def one(case: Case) -> None:
        nonlocal last_report
        if out_of_budget():
            return
        stats.examples += 1
        stats.by_kind[case.kind] = stats.by_kind.get(case.kind, 0) + 1
        method, path, body, headers = request_of(gateway, case)
        answers = gateway.send_all(method, path, body, headers)
        # In a document, an envelope's query, or a GET's parameters.
        deletes = b"delete" in (body or b"") or "delete" in path
        if case.who in ("user", "admin") and deletes:
            gateway.replace_deleted()
        for sent in answers:
            if isinstance(sent, Broken):
                failures.append(f"{sent}\nrequest: {case.describe()}")
                raise sent
            status, answer_headers, data = sent
            stats.requests += 1
            stats.statuses[str(status)] = stats.statuses.get(str(status), 0) + 1
            try:
                answer = judge(case, status, answer_headers, data, deletes)
            except Broken as error:
                if len(failures) < 20:
                    failures.append(str(error))
                raise
            record(case, answer, status, data)
        now = time.monotonic()
        if now - last_report >= 10:
            last_report = now
            print(f"fuzz.py: {stats.examples} examples in {now - started:.0f} s", file=sys.stderr, flush=True)

    batch = 0
    shrunk: list[str] = []
    while not out_of_budget() and len(shrunk) < args.max_failures:
        # One Hypothesis run a batch: a seed of its own (so any batch replays
        # alone), and shrinking for each failure it meets.
        @seed(args.seed + batch)
        @settings(
            # Hypothesis draws a whole batch even when the budget runs out
            # in it: the last one is cut to what is left.
            max_examples=args.batch if deadline else max(1, min(args.batch, args.examples - stats.examples)),
            database=None,
            deadline=None,
            derandomize=False,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @given(strategy)
        def fuzz_batch(case):
            one(case)

        try:
            fuzz_batch()
        except Exception as error:  # noqa: BLE001 (every failure is reported)
            notes = "\n".join(getattr(error, "__notes__", []))
            shrunk.append(
                f"batch {batch} (seed {args.seed + batch}): {type(error).__name__}: {error}\n{notes}"
            )
        batch += 1

    summary = {
        "seed": args.seed,
        "anonymous": args.anonymous,
        "examples": stats.examples,
        "requests": stats.requests,
        "concurrency": args.concurrency,
        "seconds": round(time.monotonic() - started, 1),
        "with_data": stats.with_data,
        "without_errors": stats.without_errors,
        "by_kind": stats.by_kind,
        "statuses": stats.statuses,
        "codes": stats.codes,
        "identities_replaced": gateway.replaced,
        "failures": len(shrunk),
    }
    print(json.dumps(summary, sort_keys=True), file=summary_out)
    if shrunk:
        print(
            "\n\n".join(["fuzz.py: shrunk failures:", *shrunk, "first failures seen:", *failures[:3]]),
            file=sys.stderr,
        )
        return 1
    return 0


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="the gateway's /graphql URL")
    parser.add_argument("--mint", help="command that prints a token, given --sub SUB (and --scope)")
    parser.add_argument("--schema", default=os.path.join(here, "..", "..", "schema.graphql"))
    parser.add_argument("--anonymous", action="store_true", help="no token, or a garbled one")
    parser.add_argument("--examples", type=int, default=300, help="requests to draw (unless --seconds)")
    parser.add_argument("--seconds", type=float, default=0, help="draw for this long instead")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: random, printed)")
    parser.add_argument("--batch", type=int, default=100, help="examples a Hypothesis run")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="send each request this many times at once"
    )
    parser.add_argument("--trace", help="write every request and answer to this file, a JSON object a line")
    parser.add_argument("--max-failures", type=int, default=3, help="stop after this many failing batches")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**31)
    print(f"fuzz.py: seed {args.seed}", file=sys.stderr, flush=True)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
