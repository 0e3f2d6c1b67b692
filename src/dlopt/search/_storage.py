"""Database URLs for a study: the PostgreSQL driver that is installed, and a server that
answers, checked before a search starts.

SQLAlchemy 2 reads a bare ``postgresql://`` as ``postgresql+psycopg2://``; ``dlopt[distributed]``
installs psycopg2, but a machine may have psycopg 3 only. The URL names the driver found.
"""

from __future__ import annotations

import importlib.util

from dlopt.errors import InvalidParameterError

DRIVERS = {"psycopg2": "psycopg2", "psycopg": "psycopg"}  # SQLAlchemy dialect: module
CONNECT_TIMEOUT_S = 5


def database_url(url: str) -> str:
    """`url` with the PostgreSQL driver that is installed named in it (other URLs as given).

    Raises:
        ValueError: a PostgreSQL URL and no driver for it is installed.
    """
    scheme, sep, rest = url.partition("://")
    base, _, driver = scheme.partition("+")
    if base not in ("postgresql", "postgres") or not sep:
        return url
    if driver:
        wanted = DRIVERS.get(driver, driver)
        if importlib.util.find_spec(wanted) is None:
            raise InvalidParameterError(
                f"names the PostgreSQL driver {driver!r}, which is not installed; "
                "pip install 'dlopt[distributed]' (psycopg2) or name the one you have"
            )
        return f"postgresql+{driver}://{rest}"
    for dialect, module in DRIVERS.items():
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{dialect}://{rest}"
    raise InvalidParameterError(
        "needs a PostgreSQL driver and none is installed: pip install 'dlopt[distributed]'"
    )


def check_reachable(url: str) -> None:
    """Connect once, waiting at most CONNECT_TIMEOUT_S seconds.

    Raises:
        ValueError: the server cannot be reached or refuses the login.
    """
    if not url.startswith("postgresql"):
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}, poolclass=sqlalchemy.NullPool
    )
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as error:
        reason = str(getattr(error, "orig", error) or error).strip().splitlines()
        raise InvalidParameterError(
            f"cannot reach the database server ({reason[0] if reason else type(error).__name__})"
        ) from None
    finally:
        engine.dispose()
