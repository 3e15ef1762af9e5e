"""Command-line verbs: `flask --app chipper seed-demo`, `vapid-keys`, `create-admin`, `invite`."""

import os
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import ScriptInfo, with_appcontext

from chipper.config import VAPID_KEY_FILE
from chipper.extensions import db
from chipper.models import Conversation, User
from chipper.push import keys
from chipper.services import ServiceError, conversations, invites, messages
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


@click.command("create-admin")
@click.option("--email", prompt=True, help="The admin's email (an existing account is promoted).")
@click.option("--name", default="", help="The name of a new account.")
@click.option("--password", default="", help="A new account's password (asked when missing).")
@with_appcontext
def create_admin(email: str, name: str, password: str) -> None:
    """Make an admin account, or make an existing account an admin."""
    user = db.session.scalar(sa.select(User).where(User.email == User.normalize_email(email)))
    if user is not None:
        user.is_admin = True
        db.session.commit()
        click.echo(f"{user.email} is an admin now.")
        return
    name = name or click.prompt("Name")
    password = password or click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = register_user(name, email, password, admin=True)
    except ServiceError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Made the admin account {user.email}. Log in with it.")


@click.command("invite")
@click.option("--uses", default=1, show_default=True, help="How many people may use it (0: any).")
@click.option("--days", default=7, show_default=True, help="Days it lasts (0: until revoked).")
@click.option("--note", default="", help="Who it is for, shown on the admin page.")
@with_appcontext
def invite(uses: int, days: int, note: str) -> None:
    """Print a new invite link."""
    try:
        made = invites.create_invite(None, uses=uses, days=days, note=note)
    except ServiceError as error:
        raise click.ClickException(error.message) from None
    base = current_app.config.get("PUBLIC_URL") or "http://127.0.0.1:5000"
    click.echo(f"{base}/register?invite={made.token}")
    if not current_app.config.get("PUBLIC_URL"):
        click.echo("Set PUBLIC_URL to the address people open to get the right host.", err=True)


MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def init_migrations(app: Flask) -> None:
    """Flask-Migrate on this app: the `flask db` commands and what they read."""
    from flask_migrate import Migrate

    # Batch mode lets the same migrations alter tables on SQLite, which has little ALTER TABLE.
    Migrate(
        app,
        db,
        directory=str(MIGRATIONS),
        render_as_batch=True,
        compare_type=True,
        include_name=modelled,
    )


def modelled(name: str | None, type_: str, _parent_names: dict) -> bool:
    """What autogenerate compares with the models: not the search index, which differs by
    database and is made by services.search (and migration 0021)."""
    from chipper.services.search import is_index_table

    return not (type_ == "table" and name is not None and is_index_table(name))


class _MigrationCommands(click.Group):
    """`flask db ...`: Flask-Migrate's own group, set up on the app when the command runs.
    Importing Flask-Migrate imports Alembic, about a seventh of what a server process loaded
    at start, for commands only the command line runs. Click makes the context of a
    subcommand through the command it found and then invokes that context's command, so
    handing it the real group's context runs Flask-Migrate's group as it is."""

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        app = parent.ensure_object(ScriptInfo).load_app()
        if "migrate" not in app.extensions:
            init_migrations(app)
        real = app.cli.commands["db"]
        return real.make_context(info_name, args, parent=parent, **extra)


def init_app(app: Flask) -> None:
    app.cli.add_command(_MigrationCommands("db", help="Database migrations (Flask-Migrate)."))
    app.cli.add_command(seed_demo)
    app.cli.add_command(vapid_keys)
    app.cli.add_command(create_admin)
    app.cli.add_command(invite)
