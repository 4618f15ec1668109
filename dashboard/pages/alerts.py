"""Alerts: behaviour detections (DGA hosts, tunnels, malware behaviours), filter, acknowledge, close."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dnsentinel.dashboard import actions, alerts, data, guard, ui
from dnsentinel.dashboard.access import Forbidden, allows
from dnsentinel.verdict_cache.es_schema import index_name
from dnsentinel.verdict_cache.vocabulary import ALERT_KINDS, ALERT_STATUSES

actor = guard.page_actor()
st.title("Alerts")
st.caption("Behaviour detections of the workers (docs/DETECTIONS.md): one row per episode, stamped with the "
           "events' own time. Acknowledging or closing needs the analyst role and is audited.")
for kind, text in st.session_state.pop("alert_msgs", []):
    getattr(st, kind)(text)

c1, c2 = st.columns(2)
kinds = c1.multiselect("Kind", ALERT_KINDS, key="al_kind", help="Rules you add appear here once they fire.")
statuses = c2.multiselect("Status", ALERT_STATUSES, default=[s for s in ALERT_STATUSES if s != "closed"],
                          key="al_status")
rng, _granularity, _ = ui.time_range_picker("al", default="Last 7 days")
if rng is None:
    st.stop()


@st.cache_data(ttl=data.LIVE_TTL_S, show_spinner=False)
def _load(since_ms: int, until_ms: int, kinds: tuple[str, ...], statuses: tuple[str, ...]) -> list[alerts.AlertRow]:
    store = data.store()
    return alerts.list_alerts(store.es, index_name("alerts", prefix=store.prefix), 1000, since_ms=since_ms,
                              until_ms=until_ms, kinds=list(kinds) or None, statuses=list(statuses) or None)


try:
    rows = _load(int(rng.start.timestamp() * 1000), int(rng.end.timestamp() * 1000), tuple(kinds), tuple(statuses))
except Exception as exc:
    ui.service_error("the alerts", exc)
    st.stop()


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


table = pd.DataFrame([{"severity": r.severity, "kind": r.kind, "status": r.status, "client": r.client or "",
                       "domain": r.domain or "", "first seen": _when(r.first_seen), "last seen": _when(r.last_seen),
                       "count": r.count, "summary": r.summary, "id": r.id} for r in rows])
st.caption(f"{len(rows):,} alerts")
if table.empty:
    st.info("No alert in this range and filter.")
    st.stop()
st.dataframe(table, hide_index=True, width="stretch")

by_id = {r.id: r for r in rows}
chosen = st.selectbox("Alert", list(by_id), key="al_pick",
                      format_func=lambda i: f"{by_id[i].severity} {by_id[i].kind} {by_id[i].client or by_id[i].domain}")
alert = by_id[chosen]
st.subheader(alert.summary)
left, right = st.columns(2)
with left:
    if alert.client:
        ui.page_link("client", f"💻 Client {alert.client}", client=alert.client)
    for c in alert.clients[:5]:
        if c != alert.client:
            ui.page_link("client", f"💻 Client {c}", client=c)
    if alert.domain:
        ui.page_link("domain", f"🔎 Domain {alert.domain}", name=alert.domain)
    st.write("Evidence (a sample):")
    st.code("\n".join(alert.evidence) or "-", language=None)
with right:
    st.json(alert.details, expanded=True)
    if alert.promoted:
        st.warning(f"Made malicious by this alert: {', '.join(alert.promoted[:10])}"
                   f"{' …' if len(alert.promoted) > 10 else ''}")
    if alert.updated_by:
        st.caption(f"Status {alert.status} by {alert.updated_by}" + (f": {alert.note}" if alert.note else ""))

if not allows(actor.role, "alert_status"):  # the form stays: a click is refused (and audited) by the action
    st.info(guard.refusal(actor, "alert_status"))
with st.form("al_form", clear_on_submit=True):
    new_status = st.radio("Set status", ALERT_STATUSES, index=ALERT_STATUSES.index(alert.status) if alert.status
                          in ALERT_STATUSES else 0, horizontal=True, key="al_new")
    note = st.text_input("Note", max_chars=500, key="al_note")
    submitted = st.form_submit_button("Save", key="al_save")
if submitted:
    try:
        before = actions.set_alert_status(actor, data.store(), alert.id, new_status, note or None)
    except Forbidden as exc:
        st.error(f"Refused: {exc}")
    except Exception as exc:
        ui.service_error("the status change", exc)
    else:
        st.session_state["alert_msgs"] = [("success", f"Alert {alert.id}: {before} → {new_status}.")]
        _load.clear()
        st.rerun()
