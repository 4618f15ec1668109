"""Domain investigation: activity, verdict, explanation, clients, vetting history, WHOIS."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dnsentinel.dashboard import data, guard, ui

guard.page_actor()
st.title("Domain investigation")
c1, c2 = st.columns([4, 1])
raw = c1.text_input("Domain name", key="dom_name", placeholder="example.com",
                    value=st.query_params.get("name", ""))
subdomains = c2.checkbox("Include subdomains", key="dom_subs", value=True)
rng, granularity, _ = ui.time_range_picker("dom", default="Last 7 days")
parsed = ui.valid_name(raw) if raw.strip() else None
if parsed is None or rng is None:
    st.stop()
name = parsed.name
st.query_params["name"] = name

# -- activity ----------------------------------------------------------------
try:
    act = data.fetch("domain_activity", name, subdomains, rng, granularity)
except Exception as exc:
    ui.service_error("activity", exc)
    act = None
if act is not None:
    cols = st.columns(4)
    cols[0].metric("Queries", f"{act['queries']:,}")
    cols[1].metric("Blocked", f"{act['blocked']:,}")
    cols[2].metric("Clients", f"{act['client_count']:,}")
    cols[3].metric("Last seen", f"{act['last']:%Y-%m-%d %H:%M}" if act["last"] is not None else "—")
    st.subheader(f"Queries per {granularity}")
    st.bar_chart(act["series"], x="time", y="queries", height=250)
    if subdomains and len(act["names"]) > 1:
        st.subheader("Names under it")
        st.dataframe(ui.highlight_uncertain(act["names"]), hide_index=True, width="stretch")

# -- verdict -------------------------------------------------------------------
st.subheader("Verdict")
try:
    doc = data.fetch("verdict", name)
except Exception as exc:
    ui.service_error("the verdict", exc)
    doc = None
try:
    live = data.live_verdict(name)
except Exception as exc:
    ui.service_error("the live decision from Redis", exc)
    live = None
cols = st.columns(4)
if doc:
    reason = doc.get("reason")
    cols[0].metric("Label", doc.get("label", "—"), help="decided by the popularity prior" if reason == "prior" else None)
    cols[1].metric("Score", f"{doc['score']:.4f}" if doc.get("score") is not None else "—")
    cols[2].metric("Model", doc.get("model", "—"))
    family = doc.get("family")
    cols[3].metric("Family guess", f"{family} ({doc.get('family_p', 0):.0%})" if family else "—")
else:
    st.caption("No verdict indexed for this exact name yet (names that are not public DNS names, "
               "such as mDNS, .lan or reverse names, are never scored).")
if live is not None:
    st.caption(f"DNS path decides **{live['decision']}** for this name now (Redis).")

with st.expander("Why? (model explanation)"):
    if st.button("Explain with the current model", key="dom_explain"):
        try:
            m = data.model()
            score = float(m.predict([name])[0])
            st.write(f"Model **{m.version}** scores {score:.4f} "
                     f"(block ≥ {ui.threshold(m.thresholds, 'block')}, allow ≤ {ui.threshold(m.thresholds, 'allow')}).")
            if hasattr(m, "predict_family"):
                fam, p = m.predict_family([name])[0]
                st.write(f"Family guess: **{fam or 'none'}**" + (f" ({p:.0%})" if fam else ""))
            if hasattr(m, "explain"):
                st.markdown(m.explain(name))
        except Exception as exc:
            ui.service_error("the model", exc)

# -- clients -------------------------------------------------------------------
if act is not None:
    st.subheader("Clients that queried it")
    st.dataframe(act["clients"], hide_index=True, width="stretch")

# -- vetting history -------------------------------------------------------------
st.subheader("Vetting history")
left, right = st.columns(2)
with left:
    st.caption("Redis vetted log")
    try:
        log = data.vetted_history(name)
        st.dataframe(pd.DataFrame(log) if log else pd.DataFrame(columns=["name", "before", "after", "by", "at"]),
                     hide_index=True, width="stretch")
    except Exception as exc:
        ui.service_error("the vetted log", exc)
with right:
    st.caption("Audit index")
    try:
        st.dataframe(data.fetch_live("audit_for", name), hide_index=True, width="stretch")
    except Exception as exc:
        ui.service_error("the audit trail", exc)

# -- WHOIS -----------------------------------------------------------------------
st.subheader("WHOIS")
target = parsed.registrable or name
if st.button(f"Look up {target}", key="dom_whois"):
    result = data.whois(target)
    if result.ok:
        st.table(pd.DataFrame({"field": list(result.fields), "value": list(result.fields.values())}))
    else:
        st.warning(result.error)

