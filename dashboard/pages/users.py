"""Users (admins only): who may log in, in which role; the same changes as ``dnsentinel users``."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dnsentinel.dashboard import actions, data, guard, ui
from dnsentinel.dashboard.access import ROLES, Forbidden
from dnsentinel.dashboard.users import UserError

actor = guard.page_actor("manage_users")
st.title("Users")
st.caption("Stored in Redis: a change applies on every dashboard instance at the user's next click. "
           "Bootstrap admins from the settings (`dashboard.users`) are changed there.")
for kind, text in st.session_state.pop("users_msgs", []):
    getattr(st, kind)(text)


def run(label: str, change, *args) -> None:
    """Do one user change through ``actions`` and report it on the rerun."""
    try:
        change(actor, data.store(), guard.accounts(), *args)
    except (Forbidden, UserError) as exc:
        st.error(str(exc))
        return
    except Exception as exc:
        ui.service_error(label, exc)
        return
    st.session_state["users_msgs"] = [("success", f"{label}: done.")]
    st.rerun()


try:
    users = guard.accounts().users.all()
except Exception as exc:
    ui.service_error("the users (Redis)", exc)
    st.stop()
st.dataframe(pd.DataFrame([u.public() for u in users], columns=["name", "role", "source", "created_at", "created_by",
                                                              "changed_at", "changed_by"]), hide_index=True, width="stretch")
names = [u.name for u in users if u.source == "redis"]

with st.expander("Add a user"):
    with st.form("user_add", clear_on_submit=True):
        c1, c2 = st.columns(2)
        name = c1.text_input("Name", key="ua_name")
        role = c2.selectbox("Role", ROLES, key="ua_role")
        first = c1.text_input("Password", type="password", key="ua_pw")
        again = c2.text_input("Password again", type="password", key="ua_pw2")
        if st.form_submit_button("Add"):
            if first != again:
                st.error("The passwords differ.")
            else:
                run(f"add {name.strip()}", actions.add_user, name, first, role)

if names:
    c1, c2, c3 = st.columns([2, 1.5, 2])
    who = c1.selectbox("User", names, key="uc_who")
    new_role = c2.selectbox("New role", ROLES, key="uc_role")
    if c2.button("Change role", key="uc_set_role"):
        run(f"{who}'s role", actions.set_role, who, new_role)
    password = c3.text_input("New password", type="password", key="uc_pw")
    if c3.button("Set password", key="uc_set_pw"):
        run(f"{who}'s password", actions.set_password, who, password)
    sure = c1.checkbox(f"Yes, remove {who} and end their sessions", key="uc_sure")
    if c1.button(f"Remove {who}", key="uc_remove", type="primary", disabled=not sure):
        run(f"remove {who}", actions.remove_user, who)
