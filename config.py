"""Configuration of the standalone portus_fab application (Flask-AppBuilder settings).

Every portus_fab setting (PORTUS_*) comes from the environment with the default documented in the
README and defined, once, in portus_fab/settings.py. The Python file PORTUS_CONFIG_FILE names, if
any, is read last: its upper-case names override everything here (and the environment's PORTUS_*).
"""

import os

from flask_appbuilder.const import AUTH_DB

from portus_fab.settings import flask_config, load_config_file

_config_file = load_config_file(os.environ.get("PORTUS_CONFIG_FILE"))

# SQLALCHEMY_DATABASE_URI, SECRET_KEY and every PORTUS_* variable that is set.
globals().update(flask_config(_config_file))

APP_NAME = "portus_fab"
ADDON_MANAGERS = ["portus_fab.PortusManager"]

AUTH_TYPE = AUTH_DB
AUTH_ROLE_ADMIN = "Admin"
AUTH_ROLE_PUBLIC = "Public"
# Self-registration off by default; new users still get their personal namespace when it is on.
AUTH_USER_REGISTRATION = False
AUTH_USER_REGISTRATION_ROLE = "User"

FAB_UPDATE_PERMS = True
FAB_ADD_SECURITY_API = True
SQLALCHEMY_TRACK_MODIFICATIONS = False
WTF_CSRF_ENABLED = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

globals().update(_config_file)
