"""``marketplace principals create|list|revoke|rotate``: who may call the HTTP API.

A new token is printed once (``create`` and ``rotate``); only its hash is stored, so a lost token is
replaced with ``rotate``, never shown again. See docs/api.md.
"""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.orm import Session

from marketplace.cli.common import JsonOpt, emit, err_console, handle_errors, in_session, print_table, stdout_console

__all__ = ["register"]

principals_app = typer.Typer(help="API principals (providers, buyers, the operator) and their tokens.",
                             no_args_is_help=True)
RoleOpt = typer.Option(None, "--role", help="provider, buyer or operator (needed only when several roles share "
                                            "the name).")


def _principal(p: Any) -> dict[str, Any]:
    return {"id": p.id, "role": p.role, "name": p.name, "active": p.active, "created_at": p.created_at,
            "revoked_at": p.revoked_at, "active_tokens": p.active_tokens, "last_used_at": p.last_used_at}


def _issued(doc: dict[str, Any]) -> None:
    from marketplace.names import rich_safe

    p = doc["principal"]
    stdout_console().print(f"{rich_safe(p['role'])} {rich_safe(p['name'])} (principal {p['id']}): token "
                           f"{doc['token']}", highlight=False, soft_wrap=True)
    err_console.print("[dim]the token is shown only this once: store it now (only its hash is kept)[/]",
                      highlight=False)


@principals_app.command("create")
@handle_errors
def create(
    name: str = typer.Option(..., "--name", help="For a provider its provider name, for a buyer its buyer name."),
    role: str = typer.Option(..., "--role", help="provider, buyer or operator."),
    as_json: bool = JsonOpt,
) -> None:
    """Create a principal and print its API token once (``{"principal": ..., "token": ...}`` with --json)."""
    from marketplace.principals import create_principal

    def work(s: Session) -> dict[str, Any]:
        issued = create_principal(s, role, name)
        return {"principal": _principal(issued.principal), "token": issued.token}

    emit(in_session(work, write=True, create_home=True), as_json, _issued)


@principals_app.command("list")
@handle_errors
def list_(as_json: bool = JsonOpt) -> None:
    """Every principal with its role, state, active tokens and when a token was last used."""
    from marketplace.principals import list_principals

    rows = in_session(lambda s: [_principal(p) for p in list_principals(s)])
    emit(rows, as_json, lambda d: print_table(
        "principals", ["id", "role", "name", "state", "tokens", "created", "last used"],
        [(r["id"], r["role"], r["name"], "active" if r["active"] else f"revoked {r['revoked_at']:%Y-%m-%d}",
          r["active_tokens"], f"{r['created_at']:%Y-%m-%d %H:%M}",
          f"{r['last_used_at']:%Y-%m-%d %H:%M}" if r["last_used_at"] else "never") for r in d],
        right=("id", "tokens")))


@principals_app.command("revoke")
@handle_errors
def revoke(name: str = typer.Argument(..., help="Principal name."), role: str | None = RoleOpt,
           as_json: bool = JsonOpt) -> None:
    """Revoke a principal and all its tokens (for good: its name is never reused)."""
    from marketplace.principals import revoke_principal

    doc = in_session(lambda s: _principal(revoke_principal(s, name, role)), write=True)
    emit(doc, as_json, lambda d: typer.echo(f"revoked {d['role']} {d['name']} (principal {d['id']}); "
                                            "its tokens no longer work"))


@principals_app.command("rotate")
@handle_errors
def rotate(name: str = typer.Argument(..., help="Principal name."), role: str | None = RoleOpt,
           as_json: bool = JsonOpt) -> None:
    """Revoke every token of a principal and print a new one once."""
    from marketplace.principals import rotate_token

    def work(s: Session) -> dict[str, Any]:
        issued = rotate_token(s, name, role)
        return {"principal": _principal(issued.principal), "token": issued.token}

    emit(in_session(work, write=True), as_json, _issued)


def register(app: typer.Typer) -> None:
    app.add_typer(principals_app, name="principals")
