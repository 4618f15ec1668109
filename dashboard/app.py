"""Entry script of the analysts' dashboard (``dnsentinel dashboard`` runs it).

Until an analyst logs in only the login page exists; afterwards the
navigation lists the pages under ``pages/`` (plain scripts, one per page).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dnsentinel.dashboard import auth
from dnsentinel.settings import get_settings

PAGES = Path(__file__).resolve().parent / "pages"


def login_page() -> None:
    st.title("dnsentinel — analyst login")
    cfg = get_settings().dashboard
    if not cfg.users:
        st.info(f"No analysts configured: the demo login is **{auth.DEMO_USER}** / **{auth.DEMO_PASSWORD}**. "
                "Set `dashboard.users` (name → bcrypt hash) before exposing the dashboard.")
    with st.form("login"):
        user = st.text_input("Analyst")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        if auth.login(st.session_state, cfg.users, user, password, cfg.session_ttl_s):
            st.rerun()
        st.error("Unknown analyst or wrong password.")


def main() -> None:
    st.set_page_config(page_title="dnsentinel", page_icon="🛡️", layout="wide")
    session = auth.current(st.session_state)
    if session is None:
        st.navigation([st.Page(login_page, title="Log in", url_path="login")]).run()
        return
    with st.sidebar:
        st.markdown(f"Logged in as **{session.user}**")
        st.caption(f"Session expires in {int(session.remaining_s() // 60)} min")
        if st.button("Log out"):
            auth.logout(st.session_state)
            st.rerun()
    st.navigation([
        st.Page(PAGES / "overview.py", title="Overview", icon="📊", default=True),
        st.Page(PAGES / "domain.py", title="Domain investigation", icon="🔎"),
        st.Page(PAGES / "client.py", title="Client investigation", icon="💻"),
        st.Page(PAGES / "vetting.py", title="Vetting", icon="⚖️"),
        st.Page(PAGES / "models.py", title="Models", icon="🧠"),
    ]).run()


main()
