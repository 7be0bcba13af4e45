"""Settings for dr_platform, read from the environment.

Every variable is documented in the README's configuration table. With nothing set, the
platform runs on its embedded defaults: a SQLite file under ``var/`` and Celery on kombu's
filesystem transport, so ``make demo`` needs no server. Production sets ``DEBUG=0``,
``SECRET_KEY``, ``ALLOWED_HOSTS``, ``DATABASE_URL`` (PostgreSQL) and ``CELERY_BROKER_URL``
(Redis), and then passes ``manage.py check --deploy`` without warnings.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from dr_platform.env import (
    database_config,
    env_bool,
    env_int,
    env_list,
    env_rates,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("DR_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)

_DEVELOPMENT_SECRET_KEY = "django-insecure-development-only-key-never-used-when-debug-is-off"  # noqa: S105 - DEBUG only
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (use a random string of 50+ characters)."
        )
    SECRET_KEY = _DEVELOPMENT_SECRET_KEY
elif len(SECRET_KEY) < 50 and not DEBUG:
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters long when DEBUG is off.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# The address participants' links point to (email acknowledgement links, callbacks).
SITE_URL = env_url("SITE_URL", "http://127.0.0.1:8000", ("http", "https")).rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_celery_beat",
    "dr_platform",
    "enrollment",
    "events",
    "settlements",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dr_platform.urls"
WSGI_APPLICATION = "dr_platform.wsgi.application"

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
                "dr_platform.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": database_config(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "America/New_York")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"
# Meter data files of several hundred MB are uploaded; they stream to disk, never to memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Security: on by default whenever DEBUG is off -------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers probe /healthz over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    # Only behind a proxy that sets this header itself and strips it from clients.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Email --------------------------------------------------------------------------------
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", bool(EMAIL_HOST))
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 15, minimum=1)
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Demand Response <dr@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Notification providers (secrets only from the environment) ----------------------------
# "sandbox" keeps every message in the outbox page; "live" uses the providers below.
NOTIFICATION_MODE = env_str("NOTIFICATION_MODE", "sandbox")
if NOTIFICATION_MODE not in ("sandbox", "live"):
    raise ImproperlyConfigured(
        f"NOTIFICATION_MODE={NOTIFICATION_MODE!r} must be 'sandbox' or 'live'."
    )
TWILIO_ACCOUNT_SID = env_str("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = env_str("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM_NUMBER = env_str("TWILIO_FROM_NUMBER", "")
TWILIO_BASE_URL = env_url("TWILIO_BASE_URL", "https://api.twilio.com", ("http", "https"))
TWILIO_TIMEOUT = env_int("TWILIO_TIMEOUT", 10, minimum=1)
# Default WCTP gateway and SNPP server, used when a pager method names none of its own.
WCTP_ENDPOINT = env_str("WCTP_ENDPOINT", "")
WCTP_SENDER_ID = env_str("WCTP_SENDER_ID", "")
WCTP_SECURITY_CODE = env_str("WCTP_SECURITY_CODE", "")
WCTP_SEND_RESPONSES_TO = env_str("WCTP_SEND_RESPONSES_TO", "")
WCTP_TIMEOUT = env_int("WCTP_TIMEOUT", 10, minimum=1)
SNPP_SERVER = env_str("SNPP_SERVER", "")
SNPP_TIMEOUT = env_int("SNPP_TIMEOUT", 10, minimum=1)
WEBHOOK_TIMEOUT = env_int("WEBHOOK_TIMEOUT", 10, minimum=1)
# The only WCTP gateways a pager method may name: the platform's senderID and securityCode
# go nowhere else (see dr_platform/outbound.py).
WCTP_TRUSTED_GATEWAYS = env_list("WCTP_TRUSTED_GATEWAYS", [WCTP_ENDPOINT] if WCTP_ENDPOINT else [])
# Webhook URLs, WCTP endpoints and SNPP servers that participants enter must resolve to
# public addresses; development and the demo (DEBUG on) may reach private ones.
DR_ALLOW_PRIVATE_OUTBOUND = env_bool("DR_ALLOW_PRIVATE_OUTBOUND", DEBUG)
# Send rate per channel kind over the defaults of events.channels.RATE_LIMIT (Twilio long
# code 1/s ...), e.g. "sms=30/s,voice=1/s" for a short code; "none" lifts a limit.
NOTIFICATION_RATE_LIMITS = env_rates("NOTIFICATION_RATE_LIMITS")
# Email backend for event notices (defaults to EMAIL_BACKEND).
NOTIFICATION_EMAIL_BACKEND = env_str("NOTIFICATION_EMAIL_BACKEND", "") or None

# --- Celery ----------------------------------------------------------------------------
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL", "filesystem://", ("filesystem", "redis", "rediss", "memory")
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport: the embedded broker of the demo. Producer and worker
    # must share the folder, so it lives under var/ beside the SQLite file.
    _broker_dir = VAR_DIR / "celery" / "broker"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(VAR_DIR / "celery" / "control"),
    }
    (VAR_DIR / "celery" / "control").mkdir(parents=True, exist_ok=True)
    _default_result_backend = f"file://{VAR_DIR / 'celery' / 'results'}"
    (VAR_DIR / "celery" / "results").mkdir(parents=True, exist_ok=True)
elif CELERY_BROKER_URL.startswith("memory://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
    _default_result_backend = "cache+memory://"
else:
    # A task not acknowledged within the visibility timeout is redelivered by Redis; it must
    # exceed the longest task time limit, or a slow task would run twice, and the longest
    # countdown a task is scheduled with (events.services.pipeline.RETRY_AFTER_MAX_SECONDS).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    _default_result_backend = CELERY_BROKER_URL
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", _default_result_backend)
CELERY_TASK_ALWAYS_EAGER = False

# --- REST framework --------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: a billing system or meter data system that sends no or a bad token gets
    # 401 with "WWW-Authenticate: Token", not a bare 403; browsers still use their session.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
