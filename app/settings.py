"""Backforth settings: everything that varies between machines comes from the environment (see .env.example)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from app.env import (
    env_bool,
    env_int,
    env_list,
    env_path,
    env_str,
    load_dotenv,
    redis_url,
    redis_url_with_db,
    secret_key_problem,
)

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env")

# pytest (>= 8.2) exports PYTEST_VERSION for the whole run, before Django's settings are read.
TESTING = "PYTEST_VERSION" in os.environ

DEBUG = env_bool("DJANGO_DEBUG", False)
# Each machine has its own random key in .env (scripts/secrets.sh, run by make); no key, a short one or a published
# placeholder refuses to start. Tests sign with a fixed key of their own.
if TESTING:
    SECRET_KEY = "backforth-test-run-only-key-0123456789-abcdefghijklmnopqrstuvwxyz"
else:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", "").strip()
    if problem := secret_key_problem(SECRET_KEY):
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY {problem}: run scripts/secrets.sh (or make), which writes a random key into .env, "
            "or set DJANGO_SECRET_KEY to 50 random characters"
        )
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    # Django's own form and widget templates, for the TemplatesSetting form renderer (FORM_RENDERER below).
    "django.forms",
    "django_htmx",
    "template_partials",
    "django_rq",
    "axes",
    "csp",
    "app",
    "annotation",
    "generation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "app.middleware.RejectNulBytesMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "app.middleware.NoStoreForUsersMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "app.urls"
WSGI_APPLICATION = "app.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "app.roles.roles_context",
            ],
            # |http_url everywhere a URL from the data becomes a link (no template can forget to load it).
            "builtins": ["app.templatetags.links"],
        },
    },
]
# Forms render through the templates above: {{ form.field.as_field_group }} is templates/forms/field.html.
FORM_RENDERER = "app.forms.FormRenderer"

DATABASES = {
    "default": dj_database_url.config(
        default="postgres://backforth:backforth@127.0.0.1:5432/backforth",
        conn_max_age=600,
        conn_health_checks=True,
    )
}
# Two checkouts on one machine can test side by side, each in its own test database.
DATABASES["default"]["TEST"] = {"NAME": env_str("BACKFORTH_TEST_DB_NAME", "") or None}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://…): Backforth needs it")

REDIS_URL = redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")
if TESTING:
    REDIS_URL = redis_url("TEST_REDIS_URL", redis_url_with_db(REDIS_URL, 15))

RQ_JOB_TIMEOUT = env_int("BACKFORTH_JOB_TIMEOUT", 6 * 3600)
# Jobs travel as JSON (a function path and a Job id), never pickles: whoever can write to Redis cannot make a
# worker unpickle code. generation.worker.BackforthWorker reads them the same way.
RQ_SERIALIZER = "rq.serializers.JSONSerializer"
RQ_QUEUES = {
    # Model work: generation, scoring, fine-tuning, evaluation. One worker per GPU.
    "gpu": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": RQ_JOB_TIMEOUT, "SERIALIZER": RQ_SERIALIZER},
    # Everything else: import, dedup, export, housekeeping.
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": RQ_JOB_TIMEOUT, "SERIALIZER": RQ_SERIALIZER},
}
RQ = {"COMMIT_MODE": "on_db_commit"}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login rate limiting (django-axes): 5 failed logins for one username from one address lock that pair out for 15
# minutes; a successful login before that resets the count. The client address is REMOTE_ADDR (axes' default
# without django-ipware), so a client cannot pick its own with X-Forwarded-For.
# app.roles.RoleBackend is Django's ModelBackend reading the user's groups with the user (one query fewer per
# request); a session signed in through ModelBackend before it replaced it asks to sign in again, once.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "app.roles.RoleBackend",
]
AXES_FAILURE_LIMIT = env_int("BACKFORTH_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("BACKFORTH_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "axes_lockout.html"
# Axes records the attempted username in a 255-character column: a longer one is cut, not a database error.
AXES_USERNAME_CALLABLE = "app.security.attempted_username"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- HTTPS and browser protections ---------------------------------------------------------------------------
# Off by default: the local demo is plain http on 127.0.0.1. Behind a TLS-terminating proxy turn them on (.env).
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", False)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
# Only behind a proxy that sets X-Forwarded-Proto itself (and drops the client's).
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False) else None
)
# Content-Security-Policy (django-csp): scripts only from our own static files (no inline scripts or handlers);
# inline style attributes are used by the templates, so styles allow 'unsafe-inline'.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# --- Backforth ---------------------------------------------------------------------------------------------
DATA_DIR = env_path("BACKFORTH_DATA_DIR", BASE_DIR / "var", base=BASE_DIR)
MODELS_DIR = DATA_DIR / "models"
EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_MODEL_DIR = MODELS_DIR / EMBEDDED_MODEL_NAME
DEFAULT_MODEL = env_path("BACKFORTH_DEFAULT_MODEL", EMBEDDED_MODEL_DIR, base=BASE_DIR)
# Backward and forward models trained by rounds: <dir>/round-N/<role>. Tests train into their own directory
# (their round numbers restart at 1 in every test database).
TRAINED_MODELS_DIR = env_path(
    "BACKFORTH_TRAINED_MODELS_DIR", MODELS_DIR / ("test-rounds" if TESTING else "rounds"), base=BASE_DIR
)

# Logs: every ERROR (Django's 500s with their method and path included) also goes to LOG_DIR/errors.log, one
# JSON record a line, which the status page reads back (app/errorlog.py). A test run logs into a temporary
# directory of its own, never into the checkout's var/log.
if TESTING:
    LOG_DIR = Path(tempfile.mkdtemp(prefix="backforth-test-log-"))
    atexit.register(shutil.rmtree, LOG_DIR, ignore_errors=True)
else:
    LOG_DIR = env_path("BACKFORTH_LOG_DIR", DATA_DIR / "log", base=BASE_DIR)
try:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
except OSError as exc:
    raise ImproperlyConfigured(f"cannot create the log directory {LOG_DIR}: {exc} (set BACKFORTH_LOG_DIR)") from exc
ERROR_LOG_FILE = LOG_DIR / "errors.log"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "jsonline": {"()": "app.errorlog.JsonLineFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "errors_file": {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": str(ERROR_LOG_FILE),
            "maxBytes": 5 * 2**20,
            "backupCount": 3,
            "encoding": "utf-8",
            "delay": True,
            "level": "ERROR",
            "formatter": "jsonline",
        },
    },
    "root": {"handlers": ["console", "errors_file"], "level": env_str("BACKFORTH_LOG_LEVEL", "INFO")},
    # axes announces itself on every start at INFO; its lockouts are WARNINGs and still show.
    "loggers": {"django.db.backends": {"level": "INFO"}, "axes": {"level": "WARNING"}},
}

if DEBUG or TESTING:
    # Serve static files straight from the app directories (no collectstatic needed).
    WHITENOISE_USE_FINDERS = True
    WHITENOISE_AUTOREFRESH = True

# Upload limits (app/uploads.py): a corpus upload (the whole request) up to BACKFORTH_MAX_UPLOAD_MB, a seed import
# file up to BACKFORTH_MAX_SEED_UPLOAD_MB; larger ones are refused with a message, not stored. Files above
# FILE_UPLOAD_MAX_MEMORY_SIZE stream to a temporary file; form bodies without files are capped by
# DATA_UPLOAD_MAX_MEMORY_SIZE (Django answers 400 above it).
BACKFORTH_MAX_UPLOAD_MB = env_int("BACKFORTH_MAX_UPLOAD_MB", 200)
BACKFORTH_MAX_SEED_UPLOAD_MB = env_int("BACKFORTH_MAX_SEED_UPLOAD_MB", 20)
if min(BACKFORTH_MAX_UPLOAD_MB, BACKFORTH_MAX_SEED_UPLOAD_MB) < 1:
    raise ImproperlyConfigured("BACKFORTH_MAX_UPLOAD_MB and BACKFORTH_MAX_SEED_UPLOAD_MB must be at least 1")
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 2**20
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 2**20
FILE_UPLOAD_HANDLERS = [
    "app.uploads.UploadLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
