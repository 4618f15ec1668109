"""Audit (admins only): every change of state, filtered by time, user, action and target."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dnsentinel.dashboard import audit, data, guard, ui
from dnsentinel.dashboard.timerange import PRESETS, last

guard.page_actor("read_audit")
st.title("Audit")
st.caption("One entry per change of state: vetting, training, promotion, rollback, users, logins, "
           "failed logins, lockouts and refused actions. `dnsentinel audit` prints the same.")

c1, c2, c3, c4 = st.columns([1.4, 1.4, 3, 2])
window = c1.selectbox("Time range", [*PRESETS, "All time"], index=list(PRESETS).index("Last 7 days"), key="au_range")
who = c2.text_input("User", key="au_who", placeholder="alice")
picked = c3.multiselect("Actions", audit.ACTIONS, key="au_actions")
target = c4.text_input("Target contains", key="au_target", placeholder="example.com, model:, user:")
since_ms = None if window == "All time" else int(last(PRESETS[window]).start.timestamp() * 1000)

store = data.store()
try:
    rows = audit.search(store.es, store.prefix, size=audit.MAX_ROWS, since_ms=since_ms, who=who,
                        actions=tuple(picked), target=target)
except Exception as exc:
    ui.service_error("the audit trail", exc)
    st.stop()
st.caption(f"{len(rows):,} entries, newest first" + (f" (the newest {audit.MAX_ROWS:,})" if len(rows) >= audit.MAX_ROWS else ""))
st.dataframe(pd.DataFrame(rows, columns=list(audit.COLUMNS)), hide_index=True, width="stretch")
