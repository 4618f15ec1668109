"""The Streamlit side of logging in: this browser's session, its cookie, and page guards.

``app.py`` calls :func:`resolve` at the top of every page run: the session token comes
from this tab's state or, after a reload, from the ``dnsentinel_session`` cookie
(``st.context.cookies``); it is checked against Redis and the user's current role is
read, so logouts, removals and role changes apply at the next click everywhere.

Streamlit has no API to *set* a cookie, so :func:`_write_cookie` runs one line of
JavaScript through ``st.html(unsafe_allow_javascript=True)`` with nothing user-typed in
it (the token is ours: base64url, digits and hex). Such a cookie cannot be HttpOnly;
it is ``SameSite=Strict`` (``Secure`` under https), signed, and worthless once its
server-side record is gone.
"""

from __future__ import annotations

import streamlit as st

from dnsentinel.dashboard import auth, data
from dnsentinel.dashboard.access import PERMISSIONS, Actor, allows
from dnsentinel.dashboard.auth import SESSION_KEY, Accounts
from dnsentinel.dashboard.sessions import COOKIE, Session
from dnsentinel.settings import get_settings

_TOKEN = "dnsentinel_token"
_COOKIE_PENDING = "dnsentinel_cookie"


@st.cache_resource(show_spinner=False)
def accounts() -> Accounts:
    """Users, login limits and sessions over the configured Redis (one client per process)."""
    return Accounts.from_settings(get_settings())


def listen_address() -> str | None:
    """The address this Streamlit server listens on (unset means every interface)."""
    return st.get_option("server.address") or None


def client_address() -> str:
    """The browser's address; Streamlit reports loopback clients as None."""
    ip = st.context.ip_address
    return ip if isinstance(ip, str) and ip else "127.0.0.1"


def _cookie() -> str:
    """The session cookie the browser sent when this tab connected (reloads bring it back)."""
    value = st.context.cookies.get(COOKIE)
    return value if isinstance(value, str) else ""


@st.cache_resource(show_spinner=False)
def _audit_index(_store: object, prefix: str) -> bool:
    from dnsentinel.dashboard import audit

    audit.ensure_index(_store.es, prefix)  # type: ignore[attr-defined]
    return True


def prepare_audit() -> None:
    """Bring the audit index's mapping up to date once per process (retried until it works)."""
    from dnsentinel.dashboard.store import Store

    store = data.store()
    if isinstance(store, Store):
        try:
            _audit_index(store, store.prefix)
        except Exception:  # ES down: the pages say so; the next run tries again
            pass


def resolve() -> Session | None:
    """This run's session (also left in ``st.session_state`` for the pages), or None."""
    token = st.session_state.get(_TOKEN) or _cookie()
    if not token:
        return None
    acc = accounts()
    found = acc.sessions.resolve(token)
    user = acc.lookup(found[0], listen_address()) if found else None
    if found is None or user is None:  # logged out, expired, user removed, or the demo login is gone
        if found is not None:
            acc.sessions.close(token)
        end()
        return None
    session = Session(user.name, found[1], user.role, token)
    st.session_state[SESSION_KEY], st.session_state[_TOKEN] = session, token
    return session


def begin(token: str) -> None:
    """After a successful login: keep the token for this tab and write the cookie on the next run."""
    st.session_state[_TOKEN] = token
    st.session_state[_COOKIE_PENDING] = (token, get_settings().dashboard.session_ttl_s)


def end() -> None:
    """Forget the session in this tab and drop the cookie (the record is closed by the caller)."""
    had_cookie = bool(_cookie() or st.session_state.get(_TOKEN))
    for key in (SESSION_KEY, _TOKEN):
        st.session_state.pop(key, None)
    if had_cookie:
        st.session_state[_COOKIE_PENDING] = ("", 0)


def write_pending_cookie() -> None:
    """Set (or clear) the cookie asked for by :func:`begin` or :func:`end`."""
    pending = st.session_state.pop(_COOKIE_PENDING, None)
    if pending is not None:
        _write_cookie(*pending)


def _write_cookie(token: str, max_age_s: int) -> None:
    st.html(f"<script>document.cookie = '{COOKIE}={token}; Path=/; Max-Age={int(max_age_s)}; SameSite=Strict'"
            " + (location.protocol === 'https:' ? '; Secure' : '');</script>", unsafe_allow_javascript=True)


def token() -> str:
    return st.session_state.get(_TOKEN, "")


def page_actor(action: str = "read") -> Actor:
    """The logged-in actor of a page; stops the page when nobody is, or the role may not ``action``."""
    session = auth.current(st.session_state)
    if session is None:
        st.warning("Please log in (sidebar) to use this page.")
        st.stop()
    actor = Actor(session.user, session.role, client_address())
    if not allows(actor.role, action):
        st.error(refusal(actor, action))
        st.stop()
    return actor


def refusal(actor: Actor, action: str) -> str:
    """What a page says where a role may not do something (the action refuses it anyway)."""
    return f"{action.replace('_', ' ').capitalize()} needs the {PERMISSIONS[action]} role; you are {actor.role}."
