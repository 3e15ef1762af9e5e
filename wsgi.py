"""WSGI entry point: `gunicorn wsgi:app`."""

from chipper import create_app

app = create_app()
