"""Flask extensions, created unbound here and wired to the app in create_app()."""

from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints keep migrations portable between SQLite (batch mode) and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# Objects stay loaded after a commit: a request that commits and then renders or serialises
# what it wrote (sending a message) would otherwise reload every row it touches, a query
# each. Sessions last one request (or one CLI command), so nothing stale outlives it.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
login_manager = LoginManager()
# Flask-Login's default "basic" protection writes `_fresh` into every non-empty session whose
# request touches the user, a signed-out one included. A page, the manifest or the service
# worker's precache asked for just before signing in and answered just after it then
# overwrote the new login's cookie with a signed-out one. Chipper asks for no fresh logins,
# so the protection only cost that.
login_manager.session_protection = None
csrf = CSRFProtect()
