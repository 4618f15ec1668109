"""Entry script of the analysts' dashboard (``dnsentinel dashboard`` runs it).

Every page run starts here: the session is resolved (tab state or cookie, checked
against Redis, role re-read), then either the login page or the pages the role may
open. Pages under ``pages/`` are plain scripts, one per page.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dnsentinel.dashboard import actions, data, guard, ui
from dnsentinel.dashboard.access import Actor, allows
from dnsentinel.dashboard.sessions import Session

PAGES = Path(__file__).resolve().parent / "pages"
ADD_USER = "dnsentinel users add NAME --role admin"


def login_page() -> None:
    st.title("dnsentinel — analyst login")
    try:
        acc = guard.accounts()
        listen = guard.listen_address()
        if acc.demo_available(listen):
            st.info("No users yet: this dashboard listens on loopback only, so the demo login from the README "
                    f"works. Add users with `{ADD_USER}`; the demo login then stops working.")
        elif not acc.users.any():
            st.error(f"No users are configured and this dashboard listens beyond loopback, so nobody can log in. "
                     f"Add one: `{ADD_USER}`.")
    except Exception as exc:
        ui.service_error("the users (Redis)", exc)
        return
    with st.form("login", clear_on_submit=True):  # a typed password does not stay in the page
        user = st.text_input("User")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in")
    if not submitted:
        return
    try:
        result, token = actions.login(data.store(), acc, user, password, guard.client_address(), listen)
    except Exception as exc:
        ui.service_error("the login", exc)
        return
    if token:
        guard.begin(token)
        st.rerun()
    if result.outcome == "locked":
        st.error(f"Too many failed logins: try again in {max(1, -(-result.retry_in_s // 60))} min.")
    else:
        st.error("Unknown user or wrong password.")


def sidebar(session: Session) -> None:
    with st.sidebar:
        st.markdown(f"Logged in as **{session.user}** ({session.role})")
        st.caption(f"Session expires in {int(session.remaining_s() // 60)} min")
        here = st.button("Log out", help="Ends this session in every tab and on every dashboard instance")
        everywhere = st.button("Log out everywhere", help="Ends all of your sessions, on every browser")
        if here or everywhere:
            actor = Actor(session.user, session.role, guard.client_address())
            try:
                actions.logout(actor, data.store(), guard.accounts(), session.token, everywhere=everywhere)
            except Exception as exc:  # the session record is gone either way; the audit may have failed
                ui.service_error("the logout's audit entry", exc)
            guard.end()
            st.rerun()


def pages(role: str) -> list:
    listed = [
        st.Page(PAGES / "overview.py", title="Overview", icon="📊", default=True),
        st.Page(PAGES / "domain.py", title="Domain investigation", icon="🔎"),
        st.Page(PAGES / "client.py", title="Client investigation", icon="💻"),
        st.Page(PAGES / "alerts.py", title="Alerts", icon="🚨"),
        st.Page(PAGES / "vetting.py", title="Vetting", icon="⚖️"),
        st.Page(PAGES / "models.py", title="Models", icon="🧠"),
    ]
    if allows(role, "read_audit"):
        listed.append(st.Page(PAGES / "audit.py", title="Audit", icon="📜"))
    if allows(role, "manage_users"):
        listed.append(st.Page(PAGES / "users.py", title="Users", icon="👥"))
    return listed


def login_pages() -> list:
    """The login form at ``/`` and at every page's address, so a reload or a link to a page
    after the session ended asks for a login there (and lands on that page after it)."""
    return [st.Page(login_page, title="Log in", url_path="login", default=True),
            *(st.Page(login_page, title="Log in", url_path=path.stem) for path in sorted(PAGES.glob("*.py")))]


def main() -> None:
    st.set_page_config(page_title="dnsentinel", page_icon="🛡️", layout="wide")
    guard.prepare_audit()
    try:
        session = guard.resolve()
    except Exception as exc:
        ui.service_error("the session (Redis)", exc)
        st.stop()
    guard.write_pending_cookie()
    if session is None:
        st.navigation(login_pages(), position="hidden").run()
        return
    sidebar(session)
    st.navigation(pages(session.role)).run()


main()
