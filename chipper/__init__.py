"""Chipper: a self-hosted messaging app."""

import os

from flask import Flask

from chipper.config import Config


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_object(Config(app.instance_path))
    if test_config:
        app.config.update(test_config)
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    from chipper.web import IdConverter

    app.url_map.converters["int"] = IdConverter  # before any route is added

    from chipper import cli, db_setup, filters, jobs, limits, realtime, streams, web
    from chipper.extensions import csrf, db, login_manager

    db.init_app(app)
    db_setup.init_app(app)
    jobs.init_app(app)
    csrf.init_app(app)
    limits.init_app(app)
    login_manager.init_app(app)
    web.init_app(app)
    filters.init_app(app)
    cli.init_app(app)

    from chipper.admin import bp as admin_bp
    from chipper.attachments import bp as attachments_bp
    from chipper.auth import bp as auth_bp
    from chipper.calls import bp as calls_bp
    from chipper.conversations import bp as conversations_bp
    from chipper.messages import bp as messages_bp
    from chipper.notifications import bp as notifications_bp
    from chipper.people import bp as people_bp
    from chipper.push import init_app as init_push
    from chipper.pwa import bp as pwa_bp
    from chipper.search import bp as search_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(conversations_bp)
    app.register_blueprint(messages_bp)
    app.register_blueprint(attachments_bp)
    app.register_blueprint(calls_bp)
    app.register_blueprint(pwa_bp)
    app.register_blueprint(notifications_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(search_bp)
    app.register_blueprint(people_bp)
    realtime.init_app(app)
    streams.init_app(app)
    init_push(app)
    _periodic_jobs(app)
    return app


def _periodic_jobs(app: Flask) -> None:
    from chipper import media
    from chipper.jobs import scheduler_of
    from chipper.services import drafts, settings, shares
    from chipper.services.calls import ringing

    scheduler = scheduler_of(app)
    scheduler.every(app.config["EVENT_PRUNE_INTERVAL"], settings.prune_events)
    scheduler.every(app.config["UPLOAD_SWEEP_INTERVAL"], media.sweep_partials)
    scheduler.every(app.config["UPLOAD_SWEEP_INTERVAL"], shares.sweep)
    scheduler.every(app.config["CALL_SWEEP_INTERVAL"], ringing.sweep)
    scheduler.every(app.config["UPLOAD_SWEEP_INTERVAL"], drafts.prune)
