"""The object-level authorization matrix of the API, enumerated from the app's routes.

Every bearer-token route that takes an object id or name (a path, query, form or header parameter in
:data:`OBJECT_PARAMS`) has probes in :func:`matrix`; a route or parameter added without one fails
``test_every_route_that_names_an_object_is_in_the_matrix``. Each probe names *another tenant's* object
(alice's submission and statement, b-one's campaign, an operator's run, a key another principal used) and is
sent by every principal: one of a role the endpoint does not admit gets 403; one of an admitted role that may
not see the object gets the 404 a missing object gets, word for word, or (for a write) its own result, never
the other's; and no such body shows the object's names, texts or amounts. Hypothesis then draws the ids and
names at random (existing, other tenants', missing, by id and by name) and checks the same rule.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from marketplace.api.app import API_PREFIX
from marketplace.db import ApproximatorVersion
from marketplace.db.lookup import parse_id_reference
from marketplace.names import display_name
from tests.support.api import ALICE_TEXTS, Market, api_client, api_settings, build_market, jsonl, leaks, make_token
from tests.support.routes import bearer_routes

ROLES = {"alice": "provider", "bob": "provider", "carol": "provider", "b-one": "buyer", "b-two": "buyer",
         "ops": "operator", "ops2": "operator"}
OPERATORS = frozenset({"ops", "ops2"})
PROVIDER_ROUTE = frozenset({"provider", "operator"})
BUYER_ROUTE = frozenset({"buyer", "operator"})
OPERATOR_ROUTE = frozenset({"operator"})

# Parameters that name an object someone owns (or a key someone used): a route with one must be in the matrix.
OBJECT_PARAMS = frozenset({"submission_id", "name", "provider", "campaign", "run_id", "buyer", "version",
                           "idempotency_key"})
# Parameters that do not: formats, limits, filters, content, and what an object is looked up *within*
# (a statement's or report's period belongs to the provider or campaign the request names; target_model
# names a folder the operator installed for every buyer).
PLAIN_PARAMS = frozenset({"format", "table", "currency", "period", "top_k", "top", "limit", "file", "target_data",
                          "text_field", "prompt_field", "response_field", "budget", "target_model",
                          "audit_threshold", "body"})


@dataclass(frozen=True)
class Probe:
    """One request naming another principal's object, and what each principal must get for it.

    ``url`` may hold ``{ref}`` (filled with ``ref``, the object's reference, or with ``missing``, one that
    names nothing: the uniform 404's baseline) and ``url``/``data`` ``{who}`` (the sending principal).
    ``visible_to`` get ``ok`` (``replayed``: as a replayed Idempotency-Key answer); principals of an admitted
    role that may not see it get ``denied`` (404: the missing object's body; 2xx/409: their own answer, never
    a replay of the other's)."""

    label: str
    method: str
    url: str
    covers: frozenset[str]
    roles: frozenset[str]
    visible_to: frozenset[str]
    ok: int = 200
    denied: int = 404
    ref: str | None = None
    missing: str | None = None
    replayed: bool = False
    first_by: str | None = None  # sends the request once before the matrix does (an Idempotency-Key's owner)
    json_body: dict[str, Any] | None = None
    data: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, client: TestClient, m: Market, who: str, *, missing: bool = False) -> Any:
        url = self.url.format(who=who, ref=self.missing if missing else self.ref)
        return client.request(self.method, url, headers={**m.headers(who), **self.headers},
                              data={k: v.format(who=who) for k, v in self.data.items()} or None,
                              files=self.files, json=self.json_body)


@dataclass
class World:
    client: TestClient
    market: Market
    run_id: str
    camp_one_version: str
    model: str
    secrets: dict[str, list[str]]  # by principal: what it may never see (other tenants' names, texts, amounts)


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    with api_client(api_settings(tmp_path, db_url)) as client:
        app_state: Any = client.app.state  # type: ignore[attr-defined]
        factory = app_state.session_factory
        m = build_market(factory)
        m.tokens["ops2"] = make_token(factory, "operator", "ops2")
        camp = m.campaign_ids["camp-one"]
        folder = app_state.settings.resolved_artifacts_dir / "validation"
        folder.mkdir(parents=True)
        (folder / f"validation_campaign{camp}_run1.json").write_text('{"misallocated_share": 0.125}')
        model = app_state.settings.resolved_models_dir / "tiny-target"
        model.mkdir(parents=True)
        (model / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
        (model / "model.safetensors").write_bytes(os.urandom(64))
        run = client.post("/api/v1/campaigns/camp-one/revalue", json={"period": "2026-11"}, headers=m.headers("ops"))
        assert run.status_code == 202, run.text
        with factory() as s:
            version = s.scalar(select(ApproximatorVersion.version).where(ApproximatorVersion.campaign_id == camp))
        owed = client.get("/api/v1/balance", headers=m.headers("alice")).json()["balances"][0]["amount_minor"]
        alices = ["alice", "alice-data.jsonl", *ALICE_TEXTS, str(owed)]
        b_ones = ["b-one", "misallocated_share"]  # a provider paid by camp-one sees its name on statements
        run_id = run.json()["run_id"]
        secrets = {"alice": [*b_ones, run_id], "bob": [*alices, *b_ones, run_id], "carol": [*alices, *b_ones, run_id],
                   # camp-one's report and selection show its providers (alice too), its status the runs on it
                   "b-one": [],
                   "b-two": [*alices, *b_ones, "camp-one", "1000.00", "100000", run_id], "ops": [], "ops2": []}
        yield World(client, m, run.json()["run_id"], str(version), model.name, secrets)
        app_state.revalue_launcher.wait(60)


def matrix(w: World) -> dict[tuple[str, str], list[Probe]]:
    """The probes of every route that names an object, keyed by (method, route path)."""
    m = w.market
    sub = str(m.submission_ids["alice"][0])
    camp = m.campaign_ids["camp-one"]
    alice, b_one = frozenset({"alice"}) | OPERATORS, frozenset({"b-one"}) | OPERATORS
    prov: dict[str, Any] = {"covers": frozenset({"provider"}), "roles": PROVIDER_ROUTE, "visible_to": alice,
                            "ref": "alice", "missing": "nobody-here"}
    by_ref = [("name", "camp-one", "no-such-campaign"), ("id", str(camp), "987654"),
              ("id:", f"id:{camp}", "id:987654")]

    def campaign(path: str, roles: frozenset[str] = BUYER_ROUTE, **kw: Any) -> list[Probe]:
        method = kw.pop("method", "GET")
        return [Probe(f"{path} by {how}", method, f"{API_PREFIX}/campaigns/{{ref}}{path}", frozenset({"name"}),
                      roles, b_one, ref=ref, missing=missing, **kw) for how, ref, missing in by_ref]

    target = jsonl([{"text": "target data on balanced books and the postings behind every credit"},
                    {"text": "target data on statements that explain each payment to a provider"}])
    form = {"budget": "10.00", "target_model": w.model}
    upload = jsonl([{"text": "zebra crossings in winter want grit, salt and a little patience"},
                    {"text": "an orchestra tunes to the oboe before the first movement begins"},
                    {"text": "a sourdough starter asks for flour, water, warmth and time"}])
    return {
        ("GET", f"{API_PREFIX}/submissions/{{submission_id}}"): [
            Probe("alice's submission", "GET", f"{API_PREFIX}/submissions/{{ref}}", frozenset({"submission_id"}),
                  PROVIDER_ROUTE, alice, ref=sub, missing="987654")],
        ("GET", f"{API_PREFIX}/submissions"): [
            Probe("alice's submissions", "GET", f"{API_PREFIX}/submissions?provider={{ref}}", **prov)],
        ("GET", f"{API_PREFIX}/statements/{{period}}"): [
            Probe("alice's statement", "GET", f"{API_PREFIX}/statements/2026-11?provider={{ref}}", **prov),
            Probe("alice's latest statement page", "GET",
                  f"{API_PREFIX}/statements/latest?format=html&provider={{ref}}", **prov),
            Probe("alice's samples as CSV", "GET",
                  f"{API_PREFIX}/statements/2026-11?format=csv&table=samples&provider={{ref}}", **prov)],
        ("GET", f"{API_PREFIX}/balance"): [
            Probe("alice's balance", "GET", f"{API_PREFIX}/balance?provider={{ref}}", **prov)],
        ("GET", f"{API_PREFIX}/campaigns/{{name}}"): campaign(""),
        ("GET", f"{API_PREFIX}/campaigns/{{name}}/report"): campaign("/report?period=2026-11"),
        ("GET", f"{API_PREFIX}/campaigns/{{name}}/selection"): [
            *campaign("/selection?top=0.5"),
            *(replace(p, label=p.label + " and version", covers=frozenset({"name", "version"}))
              for p in campaign(f"/selection?top=0.5&version={w.camp_one_version}")),
            # b-one's model version through b-two's own campaign: nobody gets camp-one's rows this way
            Probe("camp-one's version through camp-two", "GET",
                  f"{API_PREFIX}/campaigns/camp-two/selection?top=0.5&version={w.camp_one_version}",
                  frozenset({"version"}), BUYER_ROUTE, frozenset(), denied=404)],
        ("GET", f"{API_PREFIX}/campaigns/{{name}}/validation"): campaign("/validation"),
        ("POST", f"{API_PREFIX}/campaigns/{{name}}/revalue"): [
            *campaign("/revalue", OPERATOR_ROUTE, method="POST", ok=202, json_body={"period": "2026-11"}),
            Probe("an operator's Idempotency-Key", "POST", f"{API_PREFIX}/campaigns/camp-one/revalue",
                  frozenset({"name", "idempotency_key"}), OPERATOR_ROUTE, frozenset({"ops"}), ok=202, denied=202,
                  replayed=True, first_by="ops", json_body={"period": "2026-10"},
                  headers={"Idempotency-Key": "revalue-key-1"})],
        ("GET", f"{API_PREFIX}/runs/{{run_id}}"): [
            Probe("an operator's run", "GET", f"{API_PREFIX}/runs/{{ref}}", frozenset({"run_id"}), OPERATOR_ROUTE,
                  OPERATORS, ref=w.run_id, missing=uuid.uuid4().hex)],
        ("GET", f"{API_PREFIX}/audit"): [
            Probe("camp-one's and alice's audit trail", "GET", f"{API_PREFIX}/audit?campaign=camp-one&provider=alice",
                  frozenset({"campaign", "provider"}), OPERATOR_ROUTE, OPERATORS)],
        ("POST", f"{API_PREFIX}/campaigns"): [
            Probe("a campaign for b-one", "POST", f"{API_PREFIX}/campaigns", frozenset({"buyer", "name"}),
                  BUYER_ROUTE, b_one, ok=201, denied=403, data={**form, "name": "for-b-one-by-{who}",
                                                                 "buyer": "b-one"},
                  files={"target_data": ("target.jsonl", target)}),
            Probe("b-one's campaign name", "POST", f"{API_PREFIX}/campaigns", frozenset({"name"}), BUYER_ROUTE,
                  frozenset(), denied=409, data={**form, "name": "camp-one"},
                  files={"target_data": ("target.jsonl", target)}),
            Probe("b-one's Idempotency-Key", "POST", f"{API_PREFIX}/campaigns", frozenset({"idempotency_key"}),
                  BUYER_ROUTE, frozenset({"b-one"}), ok=201, denied=409, replayed=True, first_by="b-one",
                  data={**form, "name": "keyed-by-b-one"}, files={"target_data": ("target.jsonl", target)},
                  headers={"Idempotency-Key": "campaign-key-1"})],
        ("POST", f"{API_PREFIX}/submissions"): [
            Probe("alice's Idempotency-Key", "POST", f"{API_PREFIX}/submissions", frozenset({"idempotency_key"}),
                  frozenset({"provider"}), frozenset({"alice"}), ok=201, denied=201, replayed=True, first_by="alice",
                  files={"file": ("upload.jsonl", upload)}, headers={"Idempotency-Key": "upload-key-1"})],
    }


def _detail_shape(response: Any, ref: str) -> str:
    return str(response.json()["detail"]).replace(ref, "{ref}")


def _check(probe: Probe, w: World, who: str) -> None:
    r = probe.send(w.client, w.market, who)
    where = (probe.label, who, r.status_code, r.text[:300])
    assert r.status_code < 500, where
    if ROLES[who] not in probe.roles:
        assert r.status_code == 403 and r.json()["error"] == "forbidden", where
    elif who in probe.visible_to:
        assert r.status_code == probe.ok, where
        assert (r.headers.get("idempotent-replayed") == "true") == probe.replayed, where
        return  # the owner (or an operator) may see it all
    else:
        assert r.status_code == probe.denied, where
        assert "idempotent-replayed" not in r.headers, where  # never another principal's stored answer
        if probe.denied == 404 and probe.ref is not None:
            missing = probe.send(w.client, w.market, who, missing=True)
            assert missing.status_code == 404, (probe.label, who, missing.text)
            assert _detail_shape(r, probe.ref) == _detail_shape(missing, probe.missing or ""), where
            assert r.json().keys() == missing.json().keys() == {"error", "detail"}, where
    sent = probe.url.format(who=who, ref=probe.ref) + json.dumps(probe.data) + json.dumps(probe.json_body)
    assert leaks(r.content, [s for s in w.secrets[who] if s not in sent]) == [], where


def test_every_route_that_names_an_object_is_in_the_matrix(world: World) -> None:
    routes = bearer_routes(world.client.app)  # type: ignore[arg-type]
    assert len(routes) >= 15, sorted(routes)  # the enumeration sees the routers' routes
    unclassified = {(route, p) for route, params in routes.items() for p in params - OBJECT_PARAMS - PLAIN_PARAMS}
    assert not unclassified, f"classify these parameters in OBJECT_PARAMS or PLAIN_PARAMS: {sorted(unclassified)}"
    naming = {route: params & OBJECT_PARAMS for route, params in routes.items() if params & OBJECT_PARAMS}
    probes = matrix(world)
    assert set(naming) - set(probes) == set(), "routes that name an object but have no probe in matrix()"
    assert set(probes) - set(routes) == set(), "probes of routes the app no longer has"
    for route, params in naming.items():
        covered = set().union(*(p.covers for p in probes[route]))
        assert covered == params, (route, "object parameters without a probe:", params - covered)


def test_no_principal_reaches_another_tenants_object(world: World) -> None:
    probes = matrix(world)
    for route_probes in probes.values():
        for probe in route_probes:
            if probe.first_by is not None:
                first = probe.send(world.client, world.market, probe.first_by)
                assert first.status_code == probe.ok and "idempotent-replayed" not in first.headers, first.text
            for who in ROLES:
                _check(probe, world, who)


# --- the same rule over random ids and names -------------------------------------------------------------

KIND_WORD = {"submission": "submission", "provider": "provider", "campaign": "campaign", "run": "run"}


@dataclass(frozen=True)
class Lookup:
    template: str  # "{ref}" where the drawn reference goes
    kind: str
    roles: frozenset[str]


LOOKUPS = [
    Lookup(f"{API_PREFIX}/submissions/{{ref}}", "submission", PROVIDER_ROUTE),
    Lookup(f"{API_PREFIX}/submissions?provider={{ref}}", "provider", PROVIDER_ROUTE),
    Lookup(f"{API_PREFIX}/statements/2026-11?provider={{ref}}", "provider", PROVIDER_ROUTE),
    Lookup(f"{API_PREFIX}/balance?provider={{ref}}", "provider", PROVIDER_ROUTE),
    Lookup(f"{API_PREFIX}/campaigns/{{ref}}", "campaign", BUYER_ROUTE),
    Lookup(f"{API_PREFIX}/campaigns/{{ref}}/report", "campaign", BUYER_ROUTE),
    Lookup(f"{API_PREFIX}/campaigns/{{ref}}/selection?top=0.5", "campaign", BUYER_ROUTE),
    Lookup(f"{API_PREFIX}/campaigns/{{ref}}/validation", "campaign", BUYER_ROUTE),
    Lookup(f"{API_PREFIX}/runs/{{ref}}", "run", OPERATOR_ROUTE),
    Lookup(f"{API_PREFIX}/audit?campaign={{ref}}", "campaign", OPERATOR_ROUTE),
    Lookup(f"{API_PREFIX}/audit?provider={{ref}}", "provider", OPERATOR_ROUTE),
]
RANDOM_REFS = st.one_of(st.integers(-2, 40).map(str), st.integers(0, 40).map(lambda i: f"id:{i}"),
                        st.sampled_from(["alice", "b-one", "ops", "camp-one", "nobody"]),
                        st.from_regex(r"[a-z][a-z0-9-]{0,11}", fullmatch=True))


def _existing_refs(w: World, kind: str) -> list[str]:
    """Every way a request can name an existing object of ``kind`` (name, id, ``id:N``)."""
    m = w.market
    if kind == "submission":
        return [str(i) for ids in m.submission_ids.values() for i in ids]
    if kind == "run":
        return [w.run_id]
    ids = m.provider_ids if kind == "provider" else m.campaign_ids
    return [ref for name, i in ids.items() for ref in (name, str(i), f"id:{i}")]


def _visible_to(w: World, kind: str, ref: str) -> frozenset[str] | None:
    """Who may see the object ``ref`` names (None: it does not exist). Mirrors the documented rules."""
    m = w.market
    if kind == "submission":
        owner = next((p for p, ids in m.submission_ids.items() if ref.lstrip("-").isdigit() and int(ref) in ids), None)
        return None if owner is None else frozenset({owner}) | OPERATORS
    if kind == "run":
        return OPERATORS if ref == w.run_id else None
    ids = m.provider_ids if kind == "provider" else m.campaign_ids
    explicit = parse_id_reference(ref)
    number = explicit if explicit is not None else (int(ref) if ref.isdigit() else None)
    name = ref if ref in ids else next((n for n, i in ids.items() if i == number), None)
    if name is None:
        return None
    if kind == "provider":  # a provider names only itself, by its name (an id is for the operator)
        return OPERATORS | ({name} if ref == name else set())
    return OPERATORS | {"b-one" if name == "camp-one" else "b-two"}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_ids_and_names_reach_only_what_the_caller_may_see(world: World, data: st.DataObject) -> None:
    lookup = data.draw(st.sampled_from(LOOKUPS), label="lookup")
    who = data.draw(st.sampled_from(sorted(ROLES)), label="who")
    ref = data.draw(st.one_of(st.sampled_from(_existing_refs(world, lookup.kind)), RANDOM_REFS), label="ref")
    r = world.client.get(lookup.template.format(ref=ref), headers=world.market.headers(who))
    where = (lookup.template, who, ref, r.status_code, r.text[:200])
    assert r.status_code < 500, where
    uniform = {"error": "not_found", "detail": f"{KIND_WORD[lookup.kind]} {display_name(ref)} not found"}
    if ROLES[who] not in lookup.roles:
        assert r.status_code == 403, where
        return
    visible = _visible_to(world, lookup.kind, ref)
    if visible is None or who not in visible:
        if lookup.kind == "submission" and not ref.lstrip("-").isdigit():
            assert r.status_code == 422, where  # not an id at all: the path parameter is refused first
            return
        assert r.status_code == 404 and r.json() == uniform, where
    else:
        assert r.status_code != 403 and r.content != json.dumps(uniform).encode(), where
    sent = lookup.template.format(ref=ref)
    assert leaks(r.content, [s for s in world.secrets[who] if s not in sent]) == [], where
