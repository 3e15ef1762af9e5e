"""Command-line verbs: `flask --app chipper seed-demo`, `flask --app chipper vapid-keys`."""

import os
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import with_appcontext

from chipper.config import VAPID_KEY_FILE
from chipper.extensions import db
from chipper.models import Conversation, User
from chipper.push import keys
from chipper.services import conversations, messages
from chipper.services.accounts import register_user
from chipper.services.conversations import Membership

DEMO_PASSWORD = "chipper-demo"
DEMO_PEOPLE = [
    ("Ada Lovelace", "ada@example.com"),
    ("Grace Hopper", "grace@example.com"),
    ("Alan Turing", "alan@example.com"),
    ("Katherine Johnson", "katherine@example.com"),
]


@click.command("seed-demo")
def seed_demo() -> None:
    """Create demo users and conversations (safe to run twice)."""
    users = []
    for name, email in DEMO_PEOPLE:
        user = db.session.scalar(sa.select(User).where(User.email == email))
        users.append(user or register_user(name, email, DEMO_PASSWORD))
    ada, grace, alan, katherine = users
    chat, created = conversations.start_private(ada, grace.id)
    if created:
        messages.send_message(grace, Membership.of(chat), "Hi Ada! Did the engine run the program?")
        messages.send_message(ada, Membership.of(chat), "It did. Bernoulli numbers, all of them.")
    group_exists = db.session.scalar(
        sa.select(Conversation.id).where(
            Conversation.type == "group", Conversation.name == "Analytical club"
        )
    )
    if not group_exists:
        group = conversations.create_group(
            ada, "Analytical club", [grace.id, alan.id, katherine.id]
        )
        messages.send_message(alan, Membership.of(group), "Welcome, everyone.")
        messages.send_message(
            katherine, Membership.of(group), "Happy to be here. Who brought the orbits?"
        )
    click.echo(f"Demo data ready. Log in with any of these (password: {DEMO_PASSWORD}):")
    for name, email in DEMO_PEOPLE:
        click.echo(f"  {email:<24} {name}")


@click.command("vapid-keys")
@click.option("--force", is_flag=True, help="Replace an existing key.")
@with_appcontext
def vapid_keys(force: bool) -> None:
    """Create the key that signs push notifications and print its public half."""
    path = Path(current_app.instance_path) / VAPID_KEY_FILE
    refusal = (
        f"{path} already exists. --force replaces it; browsers subscribed with the old key "
        "then get no notifications until they subscribe again."
    )
    if path.exists() and not force:
        raise click.ClickException(refusal)
    try:
        vapid = keys.create_key_file(path, force=force)
    except FileExistsError:
        raise click.ClickException(refusal) from None
    click.echo(f"Wrote {path} (readable by you only). Restart the server to use it.")
    if os.environ.get("VAPID_PRIVATE_KEY", "").strip():
        click.echo("VAPID_PRIVATE_KEY is set in the environment: it wins over this file.", err=True)
    click.echo("Public key (the browser's applicationServerKey):")
    click.echo(keys.public_key(vapid))


def init_app(app: Flask) -> None:
    app.cli.add_command(seed_demo)
    app.cli.add_command(vapid_keys)
