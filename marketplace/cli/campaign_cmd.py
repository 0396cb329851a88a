"""``marketplace campaign create|list|show``."""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy.orm import Session

from marketplace.cli.common import JsonOpt, emit, handle_errors, in_session, print_fields, print_table
from marketplace.errors import ConfigError
from marketplace.names import validate_name
from marketplace.runtime import ingest_limits

__all__ = ["register"]

campaign_app = typer.Typer(help="Campaigns: a target model + target data + a budget per period.", no_args_is_help=True)


def _render(info: object) -> None:
    print_fields("campaign", vars(info))


@campaign_app.command("create")
@handle_errors
def create(
    name: str = typer.Argument(..., help="Unique campaign name."),
    target_model: Path = typer.Option(..., "--target-model", help="A Hugging Face causal-LM checkpoint folder."),
    target_data: Path = typer.Option(..., "--target-data", help="Target data file (JSONL, CSV, Parquet, HF folder)."),
    budget: str = typer.Option(..., "--budget", help="Budget per pricing period in major units, e.g. 1000.00."),
    currency: str = typer.Option("EUR", "--currency", help="ISO 4217 currency code."),
    audit_threshold: float = typer.Option(
        0.5, "--audit-threshold", help="Minimum Spearman(approximator, exact LinFiK) on the audit sample to pay out."
    ),
    text_field: str | None = typer.Option(None, "--text-field", help="Field holding the text."),
    prompt_field: str | None = typer.Option(None, "--prompt-field", help="Field holding the prompt."),
    response_field: str | None = typer.Option(None, "--response-field", help="Field holding the response."),
    buyer: str | None = typer.Option(None, "--buyer", help="The buyer that owns the campaign (its API principal "
                                     "sees it); default: none, the operator's own."),
    as_json: bool = JsonOpt,
) -> None:
    """Create a campaign: reads and normalises the target data, digests the target model."""
    from marketplace.campaigns import CampaignInfo, create_campaign, describe_campaign
    from marketplace.ingest import FieldMapping, read_normalised_records
    from marketplace.money import parse_amount
    from marketplace.valuation import digest_model_dir

    name = validate_name(name, "campaign")  # before reading any data: a bad name is a one-line error
    if buyer is not None:
        buyer = validate_name(buyer, "buyer")
    if not target_model.is_dir():
        raise ConfigError(f"--target-model {target_model} is not a folder; pass a save_pretrained checkpoint folder")
    try:
        mapping = FieldMapping(text_field=text_field, prompt_field=prompt_field, response_field=response_field)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"field options: {exc}") from exc
    records = read_normalised_records(target_data, mapping=mapping, limits=ingest_limits())
    model_digest = digest_model_dir(target_model)

    def insert(session: Session) -> CampaignInfo:
        campaign = create_campaign(
            session,
            name=name,
            target_model_path=str(target_model.resolve()),
            target_model_digest=model_digest,
            target_data_path=str(target_data.resolve()),
            target_records=records,
            budget=parse_amount(budget, currency.upper()),
            audit_threshold=audit_threshold,
            buyer=buyer,
        )
        session.flush()
        return describe_campaign(session, campaign.id)

    emit(in_session(insert, write=True, create_home=True), as_json, _render)


@campaign_app.command("list")
@handle_errors
def list_(as_json: bool = JsonOpt) -> None:
    """All campaigns."""
    from marketplace.campaigns import list_campaigns

    emit(in_session(list_campaigns), as_json, lambda d: print_table(
        "campaigns", ["id", "name", "budget", "target samples"],
        [(i.id, i.name, i.budget, i.n_target_samples) for i in d]))


@campaign_app.command("show")
@handle_errors
def show(name: str = typer.Argument(..., help="Campaign name or id."), as_json: bool = JsonOpt) -> None:
    """One campaign, with its target model and data digests."""
    from marketplace.campaigns import describe_campaign

    emit(in_session(lambda s: describe_campaign(s, name)), as_json, _render)


def register(app: typer.Typer) -> None:
    app.add_typer(campaign_app, name="campaign")
